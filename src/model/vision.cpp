#include "hlip/model/vision.h"

#include <algorithm>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hlip/core/error.h"

namespace hlip::model {

std::string to_string(AttentionLevel level) {
  switch (level) {
    case AttentionLevel::kSlice:
      return "slice";
    case AttentionLevel::kScan:
      return "scan";
    case AttentionLevel::kStudy:
      return "study";
  }
  return "unknown";
}

std::string to_string(Pooling pooling) {
  switch (pooling) {
    case Pooling::kCls:
      return "cls";
    case Pooling::kDinoTxt:
      return "dinotxt";
    case Pooling::kDual:
      return "dual";
  }
  return "unknown";
}

std::string to_string(SpatialPosEmbInit init) {
  return init == SpatialPosEmbInit::kSinCos3d ? "sincos3d" : "sincos1d+2d";
}

AttentionLevel parse_attention_level(const std::string& name) {
  if (name == "slice") return AttentionLevel::kSlice;
  if (name == "scan") return AttentionLevel::kScan;
  if (name == "study") return AttentionLevel::kStudy;
  throw Error(fmt::format("attention level \"{}\": expected slice, scan or study", name));
}

Pooling parse_pooling(const std::string& name) {
  if (name == "cls" || name == "token") return Pooling::kCls;
  if (name == "dinotxt") return Pooling::kDinoTxt;
  if (name == "dual") return Pooling::kDual;
  throw Error(fmt::format("pooling \"{}\": expected cls, dinotxt or dual", name));
}

SpatialPosEmbInit parse_spatial_posemb_init(const std::string& name) {
  if (name == "sincos3d") return SpatialPosEmbInit::kSinCos3d;
  if (name == "sincos1d+2d") return SpatialPosEmbInit::kSinCos1d2d;
  throw Error(fmt::format("spatial_posemb_init \"{}\": expected sincos3d or sincos1d+2d", name));
}

std::vector<AttentionLevel> attention_levels_from_indexes(int64_t depth,
                                                          const std::vector<int64_t>& slice_indexes,
                                                          const std::vector<int64_t>& scan_indexes,
                                                          const std::vector<int64_t>& study_indexes) {
  std::vector<int> seen(static_cast<size_t>(std::max<int64_t>(depth, 0)), 0);
  std::vector<AttentionLevel> levels(seen.size(), AttentionLevel::kScan);
  const auto assign = [&](const std::vector<int64_t>& indexes, AttentionLevel level, const char* field) {
    for (int64_t i : indexes) {
      if (i < 0 || i >= depth) {
        throw Error(fmt::format("{}: block index {} is outside 0..{}", field, i, depth - 1));
      }
      if (seen[static_cast<size_t>(i)]++ > 0) {
        throw Error(fmt::format("{}: block index {} is listed for more than one attention level", field, i));
      }
      levels[static_cast<size_t>(i)] = level;
    }
  };
  assign(slice_indexes, AttentionLevel::kSlice, "slice_attn_indexes");
  assign(scan_indexes, AttentionLevel::kScan, "scan_attn_indexes");
  assign(study_indexes, AttentionLevel::kStudy, "study_attn_indexes");
  for (size_t i = 0; i < seen.size(); ++i) {
    if (seen[i] == 0) throw Error(fmt::format("attention levels: block {} is in no attention index list", i));
  }
  return levels;
}

std::vector<AttentionLevel> scan_study_levels(int64_t depth) {
  std::vector<AttentionLevel> levels;
  for (int64_t i = 0; i < depth; ++i)
    levels.push_back(i % 3 == 2 ? AttentionLevel::kStudy : AttentionLevel::kScan);
  return levels;
}

std::array<int64_t, 3> VisionOptions::grid_size() const {
  return {img_size[0] / patch_size[0], img_size[1] / patch_size[1], img_size[2] / patch_size[2]};
}

void VisionOptions::validate() const {
  const auto fail = [](const std::string& message) { throw Error("vision options: " + message); };
  if (width <= 0) fail(fmt::format("width is {}, must be positive", width));
  if (depth <= 0) fail(fmt::format("depth is {}, must be positive", depth));
  if (num_heads <= 0 || width % num_heads != 0) {
    fail(fmt::format("num_heads is {}, must divide width {}", num_heads, width));
  }
  if (mlp_ratio <= 0.0) fail(fmt::format("mlp_ratio is {}, must be positive", mlp_ratio));
  if (norm_eps <= 0.0) fail(fmt::format("norm_eps is {}, must be positive", norm_eps));
  for (int axis = 0; axis < 3; ++axis) {
    if (patch_size[axis] <= 0)
      fail(fmt::format("patch_size is [{}], must be positive", fmt::join(patch_size, ", ")));
    if (img_size[axis] < patch_size[axis] || img_size[axis] % patch_size[axis] != 0) {
      fail(fmt::format("img_size [{}] is not a whole number of patches of [{}]", fmt::join(img_size, ", "),
                       fmt::join(patch_size, ", ")));
    }
  }
  if (static_cast<int64_t>(attention_levels.size()) != depth) {
    fail(fmt::format("attention_levels has {} entries, depth is {}", attention_levels.size(), depth));
  }
  if (reg_tokens < 0) fail(fmt::format("reg_tokens is {}, must be >= 0", reg_tokens));
  if (pooling == Pooling::kDual && reg_tokens != 1) {
    fail(fmt::format("pooling dual needs reg_tokens 1 (CLS + register), reg_tokens is {}", reg_tokens));
  }
  if (max_num_scans < 0) fail(fmt::format("max_num_scans is {}, must be >= 0", max_num_scans));
  if (patch_dropout < 0.0 || patch_dropout >= 1.0) {
    fail(fmt::format("patch_dropout is {}, must be in [0, 1)", patch_dropout));
  }
  if (drop_path < 0.0 || drop_path >= 1.0) fail(fmt::format("drop_path is {}, must be in [0, 1)", drop_path));
  if (rope && rope_axis_channels(width / num_heads) == 0) {
    fail(fmt::format("rope: head dimension {} is too small for axial RoPE (needs >= 6)", width / num_heads));
  }
  if (embed_dim <= 0) fail(fmt::format("embed_dim is {}, must be positive", embed_dim));
  if (spatial_posemb_init == SpatialPosEmbInit::kSinCos3d && width % 6 != 0) {
    fail(fmt::format("spatial_posemb_init sincos3d needs width % 6 == 0, width is {}", width));
  }
  if (spatial_posemb_init == SpatialPosEmbInit::kSinCos1d2d && width % 4 != 0) {
    fail(fmt::format("spatial_posemb_init sincos1d+2d needs width % 4 == 0, width is {}", width));
  }
}

namespace {

std::vector<int64_t> every_third(int64_t depth, int64_t offset) {
  std::vector<int64_t> indexes;
  for (int64_t i = offset; i < depth; i += 3)
    indexes.push_back(i);
  return indexes;
}

std::vector<int64_t> range_except(int64_t depth, const std::vector<int64_t>& excluded) {
  std::vector<int64_t> indexes;
  for (int64_t i = 0; i < depth; ++i) {
    if (std::find(excluded.begin(), excluded.end(), i) == excluded.end()) indexes.push_back(i);
  }
  return indexes;
}

VisionOptions base_2026() {
  VisionOptions o;
  o.patch_size = {6, 16, 16};
  o.reg_tokens = 1;
  o.pooling = Pooling::kDual;
  o.max_num_scans = 0;
  o.spatial_posemb_init = SpatialPosEmbInit::kSinCos1d2d;
  return o;
}

VisionOptions large_2026() {
  VisionOptions o = base_2026();
  o.width = 1024;
  o.depth = 24;
  o.num_heads = 16;
  o.embed_dim = 768;
  return o;
}

}  // namespace

std::vector<std::string> published_vision_models() {
  return {"vit_base_multiscan_h2_token1176",      "vit_base_multiscan_h3_token1176",
          "vit_base_singlescan_h2_token2744",     "ablate_seqposemb_vit_base_multiscan_h2_dinotxt1568",
          "vit_base_scan_study_dualdinotxt1568",  "vit_base_slice_scan_dualdinotxt2744",
          "vit_large_scan_study_dualdinotxt1568", "vit_large_slice_scan_study_dualdinotxt1568"};
}

VisionOptions vision_options_for(const std::string& model_name) {
  VisionOptions o;
  if (model_name == "vit_base_multiscan_h2_token1176" || model_name == "vit_base_multiscan_h3_token1176") {
    o.max_num_scans = 40;
    o.spatial_posemb_init = SpatialPosEmbInit::kSinCos3d;
    if (model_name.find("h3") != std::string::npos) {
      o.attention_levels =
          attention_levels_from_indexes(12, every_third(12, 0), every_third(12, 1), every_third(12, 2));
    }
  } else if (model_name == "vit_base_singlescan_h2_token2744") {
    o.img_size = {112, 336, 336};
    o.patch_size = {8, 24, 24};
    o.max_num_scans = 1;
    o.spatial_posemb_init = SpatialPosEmbInit::kSinCos3d;
    o.attention_levels =
        attention_levels_from_indexes(12, range_except(12, every_third(12, 2)), {}, every_third(12, 2));
  } else if (model_name == "ablate_seqposemb_vit_base_multiscan_h2_dinotxt1568") {
    o.patch_size = {6, 16, 16};
    o.pooling = Pooling::kDinoTxt;
    o.embed_dim = 768;
  } else if (model_name == "vit_base_scan_study_dualdinotxt1568") {
    o = base_2026();
  } else if (model_name == "vit_base_slice_scan_dualdinotxt2744") {
    o = base_2026();
    o.img_size = {112, 336, 336};
    o.patch_size = {8, 24, 24};
    o.max_num_scans = 1;
    o.attention_levels =
        attention_levels_from_indexes(12, range_except(12, every_third(12, 2)), every_third(12, 2), {});
  } else if (model_name == "vit_large_scan_study_dualdinotxt1568") {
    o = large_2026();
    const std::vector<int64_t> study{5, 11, 17, 23};
    o.attention_levels = attention_levels_from_indexes(24, {}, range_except(24, study), study);
  } else if (model_name == "vit_large_slice_scan_study_dualdinotxt1568") {
    o = large_2026();
    const std::vector<int64_t> study{5, 11, 17, 23}, scan{4, 10, 16, 22};
    std::vector<int64_t> both = study;
    both.insert(both.end(), scan.begin(), scan.end());
    o.attention_levels = attention_levels_from_indexes(24, range_except(24, both), scan, study);
  } else {
    throw Error(fmt::format("vision model \"{}\" is not a published HLIP model (known: {})", model_name,
                            fmt::join(published_vision_models(), ", ")));
  }
  o.validate();
  return o;
}

std::map<std::string, at::Tensor> named_tensors(const VisionTrace& trace, const std::string& prefix) {
  std::map<std::string, at::Tensor> named;
  const auto add = [&](const std::string& name, const at::Tensor& t) {
    if (t.defined()) named[prefix + name] = t;
  };
  add("patch_tokens", trace.patch_tokens);
  add("pos_embed", trace.pos_embed);
  for (size_t i = 0; i < trace.blocks.size(); ++i)
    add(fmt::format("blocks.{}.out", i), trace.blocks[i]);
  add("features", trace.features);
  add("pooled", trace.pooled);
  return named;
}

VisionHeadImpl::VisionHeadImpl(int64_t num_features, int64_t embed_dim) {
  proj = register_module("proj",
                         torch::nn::Linear(torch::nn::LinearOptions(num_features, embed_dim).bias(false)));
}

VisionTowerImpl::VisionTowerImpl(VisionOptions options) {
  trunk = register_module("trunk", HierarchicalVit(options));
  head = register_module("head", VisionHead(options.num_features(), options.embed_dim));
}

at::Tensor VisionTowerImpl::forward(const at::Tensor& image, VisionTrace* trace) {
  return head(trunk->forward(image, trace));
}

}  // namespace hlip::model
