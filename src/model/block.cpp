#include <fmt/format.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include "hlip/core/error.h"
#include "hlip/model/attention.h"
#include "hlip/model/layer_norm.h"

namespace hlip::model {
namespace {

c10::optional<at::Tensor> optional(const at::Tensor& t) {
  return t.defined() ? c10::optional<at::Tensor>(t) : c10::nullopt;
}

at::Tensor from_optional(const at::IValue& value) {
  return value.isNone() ? at::Tensor() : value.toTensor();
}

// Gradient checkpointing: forward runs the block without recording a graph; backward runs it again with the
// same inputs and the same drop-path masks (drawn before the call, so no generator state needs restoring) and
// differentiates that. The block's parameters are inputs so that their gradients reach them through this
// node. The block is referred to by address: it must outlive the backward pass, as a module does its training
// step.
struct BlockRecompute : public torch::autograd::Function<BlockRecompute> {
  static constexpr size_t kNonParameterInputs = 6;

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, int64_t block_address,
                            int64_t num_prefix, const c10::optional<at::Tensor>& rope_positions,
                            const c10::optional<at::Tensor>& drop_path_attn,
                            const c10::optional<at::Tensor>& drop_path_mlp, at::TensorList parameters) {
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = block_address;
    ctx->saved_data["num_prefix"] = num_prefix;
    ctx->saved_data["rope_positions"] = rope_positions;
    ctx->saved_data["drop_path_attn"] = drop_path_attn;
    ctx->saved_data["drop_path_mlp"] = drop_path_mlp;
    auto* block = reinterpret_cast<BlockImpl*>(block_address);
    return block->forward_with_masks(x, inputs(ctx));
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    auto* block = reinterpret_cast<BlockImpl*>(ctx->saved_data["block"].toInt());
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const std::vector<at::Tensor> parameters = block->parameters();
    at::Tensor y;
    {
      at::AutoGradMode grad_mode(true);
      y = block->forward_with_masks(x, inputs(ctx));
    }
    std::vector<at::Tensor> wrt{x};
    for (const at::Tensor& p : parameters) {
      if (p.requires_grad()) wrt.push_back(p);
    }
    const torch::autograd::variable_list grads =
        torch::autograd::grad({y}, wrt, {grad_outputs[0]}, /*retain_graph=*/false, /*create_graph=*/false,
                              /*allow_unused=*/true);
    torch::autograd::variable_list result(kNonParameterInputs + parameters.size());
    result[0] = grads[0];
    size_t next = 1;
    for (size_t i = 0; i < parameters.size(); ++i) {
      if (parameters[i].requires_grad()) result[kNonParameterInputs + i] = grads[next++];
    }
    return result;
  }

  static BlockInputs inputs(torch::autograd::AutogradContext* ctx) {
    BlockInputs in;
    in.num_prefix = ctx->saved_data["num_prefix"].toInt();
    in.rope_positions = from_optional(ctx->saved_data["rope_positions"]);
    in.drop_path_attn = from_optional(ctx->saved_data["drop_path_attn"]);
    in.drop_path_mlp = from_optional(ctx->saved_data["drop_path_mlp"]);
    return in;
  }
};

}  // namespace

at::Tensor sample_drop_path_mask(const at::Tensor& x, double rate) {
  if (rate <= 0.0) return {};
  if (rate >= 1.0) throw Error(fmt::format("drop_path: rate is {}, must be below 1", rate));
  const double keep = 1.0 - rate;
  return at::empty({x.size(0), 1, 1}, x.options().requires_grad(false)).bernoulli_(keep).div_(keep);
}

MlpImpl::MlpImpl(int64_t width, int64_t hidden) {
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(width, hidden).bias(true)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(hidden, width).bias(true)));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
  return fc2(at::gelu(fc1(x)));
}

BlockImpl::BlockImpl(BlockOptions options) : options_(options) {
  const int64_t width = options.width();
  const auto hidden = static_cast<int64_t>(static_cast<double>(width) * options.mlp_ratio());
  norm1 = register_module("norm1",
                          torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(options.norm_eps())));
  attn = register_module("attn", Attention(width, options.num_heads(), options.attention_kernel()));
  norm2 = register_module("norm2",
                          torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(options.norm_eps())));
  mlp = register_module("mlp", Mlp(width, hidden));
}

BlockInputs BlockImpl::with_sampled_masks(const at::Tensor& x, const BlockInputs& inputs) {
  BlockInputs in = inputs;
  if (is_training() && options_.drop_path() > 0.0) {
    if (!in.drop_path_attn.defined()) in.drop_path_attn = sample_drop_path_mask(x, options_.drop_path());
    if (!in.drop_path_mlp.defined()) in.drop_path_mlp = sample_drop_path_mask(x, options_.drop_path());
  }
  return in;
}

at::Tensor BlockImpl::forward_with_masks(const at::Tensor& x, const BlockInputs& inputs) {
  at::Tensor branch = attn(layer_norm_fp32(norm1, x), inputs.rope_positions, inputs.num_prefix);
  at::Tensor y = inputs.drop_path_attn.defined() ? x + branch * inputs.drop_path_attn : x + branch;
  branch = mlp(layer_norm_fp32(norm2, y));
  return inputs.drop_path_mlp.defined() ? y + branch * inputs.drop_path_mlp : y + branch;
}

at::Tensor BlockImpl::forward(const at::Tensor& x, const BlockInputs& inputs) {
  return forward_with_masks(x, with_sampled_masks(x, inputs));
}

at::Tensor BlockImpl::forward_checkpointed(const at::Tensor& x, const BlockInputs& inputs) {
  const BlockInputs in = with_sampled_masks(x, inputs);
  if (!at::GradMode::is_enabled()) return forward_with_masks(x, in);
  const std::vector<at::Tensor> params = parameters();
  return BlockRecompute::apply(x, reinterpret_cast<int64_t>(this), in.num_prefix, optional(in.rope_positions),
                               optional(in.drop_path_attn), optional(in.drop_path_mlp),
                               at::TensorList(params));
}

}  // namespace hlip::model
