#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hlip/core/error.h"
#include "hlip/model/layer_norm.h"
#include "hlip/model/pos_embed.h"
#include "hlip/model/vision.h"

namespace hlip::model {

HierarchicalVitImpl::HierarchicalVitImpl(VisionOptions options) : options_(std::move(options)) {
  options_.validate();
  const int64_t width = options_.width;
  const auto [d, h, w] = options_.grid_size();
  // Registration order gives the key order of the released state dicts (spec appendix A).
  cls_token = register_parameter("cls_token", at::zeros({1, 1, width}));
  if (options_.reg_tokens > 0)
    reg_token = register_parameter("reg_token", at::zeros({1, options_.reg_tokens, width}));
  spatial_posemb =
      register_parameter("spatial_posemb", at::zeros({1, d, h, w, width}), /*requires_grad=*/false);
  if (options_.max_num_scans > 1) {
    sequential_posemb = register_parameter("sequential_posemb", at::zeros({1, options_.max_num_scans, width}),
                                           /*requires_grad=*/false);
  }
  patch_embed = register_module("patch_embed", PatchEmbed3d(width, options_.patch_size));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options_.depth; ++i) {
    // Stochastic depth grows linearly from 0 at block 0 to drop_path at the last block (timm's linspace).
    const double rate = options_.depth > 1 ? options_.drop_path * static_cast<double>(i) /
                                                 static_cast<double>(options_.depth - 1)
                                           : 0.0;
    Block block(BlockOptions()
                    .width(width)
                    .num_heads(options_.num_heads)
                    .mlp_ratio(options_.mlp_ratio)
                    .norm_eps(options_.norm_eps)
                    .drop_path(rate)
                    .attention_kernel(options_.attention_kernel));
    blocks->push_back(block);
    block_list_.push_back(block);
  }
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(options_.norm_eps)));
  reset_parameters();
}

void HierarchicalVitImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  const auto [d, h, w] = options_.grid_size();
  cls_token.normal_(0.0, 1e-6);
  if (reg_token.defined()) reg_token.normal_(0.0, 1e-6);
  spatial_posemb.copy_(options_.spatial_posemb_init == SpatialPosEmbInit::kSinCos3d
                           ? spatial_sincos_3d(options_.width, d, h, w)
                           : spatial_sincos_1d_2d(options_.width, d, h, w));
  if (sequential_posemb.defined())
    sequential_posemb.copy_(sequential_sincos(options_.width, options_.max_num_scans));
  for (auto& block : block_list_) {
    for (torch::nn::Linear* linear :
         {&block->attn->qkv, &block->attn->proj, &block->mlp->fc1, &block->mlp->fc2}) {
      (*linear)->weight.normal_(0.0, 0.02);
      (*linear)->bias.zero_();
    }
  }
}

at::Tensor HierarchicalVitImpl::position_embedding(int64_t num_scans, int64_t d, int64_t h, int64_t w) {
  const at::Tensor spatial = resample_spatial(spatial_posemb, d, h, w);
  if (!sequential_posemb.defined()) return spatial.unsqueeze(1);
  const int64_t rows = sequential_posemb.size(1);
  at::Tensor sequential;
  if (is_training()) {
    if (num_scans > rows) {
      throw Error(fmt::format("sequential_posemb: {} scans in a training study, more than max_num_scans {}",
                              num_scans, rows));
    }
    const at::Tensor picked = at::randperm(rows, at::dtype(at::kLong)).narrow(0, 0, num_scans);
    sequential = sequential_posemb.index_select(1, picked.to(sequential_posemb.device()));
  } else {
    sequential = num_scans <= rows ? sequential_posemb.narrow(1, 0, num_scans)
                                   : resample_sequential(sequential_posemb, num_scans);
  }
  return sequential.view({1, num_scans, 1, 1, 1, options_.width}) + spatial.unsqueeze(1);
}

at::Tensor HierarchicalVitImpl::run_block(int64_t index, const at::Tensor& x,
                                          const at::Tensor& rope_positions) {
  BlockInputs inputs;
  inputs.num_prefix = options_.num_prefix_tokens();
  inputs.rope_positions = rope_positions;
  Block& block = block_list_[static_cast<size_t>(index)];
  return options_.grad_checkpointing ? block->forward_checkpointed(x, inputs) : block->forward(x, inputs);
}

EmbeddedStudy HierarchicalVitImpl::embed(const at::Tensor& image, VisionTrace* trace) {
  if (image.dim() != 6 || image.size(2) != 1) {
    throw Error(
        fmt::format("vision: image must be [B, N, 1, D, H, W], got [{}]", fmt::join(image.sizes(), ", ")));
  }
  const int64_t batch = image.size(0), scans = image.size(1), width = options_.width;
  const int64_t prefix = options_.num_prefix_tokens();
  at::Tensor x = patch_embed(image);
  const int64_t d = x.size(2), h = x.size(3), w = x.size(4);
  const at::Tensor pos = position_embedding(scans, d, h, w).to(x.scalar_type());
  if (trace != nullptr) {
    trace->patch_tokens = x;
    trace->pos_embed = pos;
    trace->blocks.clear();
  }
  x = x + pos;

  // Block-0 layout: rows of the row-major [B, N, d, h, w, C] tensor grouped into windows, prefix tokens in
  // front.
  const AttentionLevel first = options_.attention_levels.front();
  const int64_t windows = first == AttentionLevel::kSlice  ? batch * scans * d
                          : first == AttentionLevel::kScan ? batch * scans
                                                           : batch;
  x = x.reshape({windows, -1, width});
  at::Tensor prefix_tokens = reg_token.defined() ? at::cat({cls_token, reg_token}, 1) : cls_token;
  x = at::cat({prefix_tokens.to(x.scalar_type()).expand({windows, prefix, width}), x}, 1);

  // Index of every patch token inside its own scan, carried through dropout and re-partitions for RoPE.
  at::Tensor scan_index;
  if (options_.rope) {
    scan_index = at::arange(d * h * w, at::TensorOptions().dtype(at::kLong).device(x.device()))
                     .view({1, 1, d * h * w})
                     .expand({batch, scans, d * h * w})
                     .reshape({windows, -1});
  }
  if (is_training() && options_.patch_dropout > 0.0) {
    const int64_t tokens = x.size(1) - prefix;
    const int64_t keep = std::max<int64_t>(
        1, static_cast<int64_t>(static_cast<double>(tokens) * (1.0 - options_.patch_dropout)));
    // A random subset of each window's patch tokens, in random order (timm PatchDropout, ordered=False).
    const at::Tensor kept = at::argsort(at::randn({windows, tokens}, x.options().dtype(at::kFloat)),
                                        /*dim=*/1, /*descending=*/false)
                                .narrow(1, 0, keep);
    const at::Tensor patches =
        x.narrow(1, prefix, tokens).gather(1, kept.unsqueeze(-1).expand({windows, keep, width}));
    x = at::cat({x.narrow(1, 0, prefix), patches}, 1);
    if (scan_index.defined()) scan_index = scan_index.gather(1, kept);
  }
  at::Tensor rope_positions;
  if (scan_index.defined()) {
    rope_positions =
        at::stack({at::div(scan_index, h * w, "floor"), at::div(at::remainder(scan_index, h * w), w, "floor"),
                   at::remainder(scan_index, w)},
                  -1)
            .to(at::kFloat);
  }

  EmbeddedStudy study;
  study.tokens = x;
  study.rope_positions = rope_positions;
  study.num_scans = scans;
  study.grid = {d, h, w};
  return study;
}

at::Tensor HierarchicalVitImpl::forward_features(const at::Tensor& image, VisionTrace* trace) {
  EmbeddedStudy study = embed(image, trace);
  at::Tensor x = study.tokens;
  at::Tensor rope_positions = study.rope_positions;
  const int64_t prefix = options_.num_prefix_tokens();
  const int64_t scans = study.num_scans, d = study.grid[0];
  AttentionLevel level = options_.attention_levels.front();
  for (int64_t i = 0; i < options_.depth; ++i) {
    const AttentionLevel next = options_.attention_levels[static_cast<size_t>(i)];
    if (next != level) {
      x = repartition(x, level, next, prefix, scans, d);
      if (rope_positions.defined()) rope_positions = repartition_side(rope_positions, level, next, scans, d);
      level = next;
    }
    x = run_block(i, x, rope_positions);
    if (trace != nullptr) trace->blocks.push_back(x);
  }
  x = repartition(x, level, AttentionLevel::kStudy, prefix, scans, d);
  x = layer_norm_fp32(norm, x);
  if (trace != nullptr) trace->features = x;
  return x;
}

at::Tensor HierarchicalVitImpl::pool(const at::Tensor& features) const {
  if (options_.pooling == Pooling::kCls) return features.narrow(1, 0, 1);
  const int64_t prefix = options_.num_prefix_tokens();
  const int64_t batch = features.size(0), tokens = features.size(1) - prefix, width = features.size(2);
  const at::Tensor mean = features.narrow(1, prefix, tokens).mean(1, /*keepdim=*/true);
  return at::cat({features.narrow(1, 0, prefix), mean.expand({batch, prefix, width})}, 2);
}

at::Tensor HierarchicalVitImpl::forward(const at::Tensor& image, VisionTrace* trace) {
  const at::Tensor pooled = pool(forward_features(image, trace));
  if (trace != nullptr) trace->pooled = pooled;
  return pooled;
}

}  // namespace hlip::model
