#include "hlip/model/clip.h"

#include <fmt/format.h>

#include <map>
#include <string>
#include <vector>

#include "hlip/core/error.h"

namespace hlip::model {

at::Tensor l2_normalize(const at::Tensor& x) {
  return x / x.norm(2, {-1}, /*keepdim=*/true).clamp_min(1e-12);
}

HlipClipImpl::HlipClipImpl(ClipConfig config) : config_(std::move(config)) {
  config_.vision.embed_dim = config_.embed_dim;
  config_.validate();
  // open_clip registers visual, text, then the logit parameters; PyTorch lists a module's own parameters
  // first, LibTorch too. Key order does not matter to safetensors.
  visual = register_module("visual", VisionTower(config_.vision));
  text = register_module("text", TextTower(config_.text_options()));
  logit_scale = register_parameter("logit_scale", at::full({}, config_.init_logit_scale));
  if (config_.init_logit_bias) {
    logit_bias = register_parameter("logit_bias", at::full({}, *config_.init_logit_bias));
  }
}

void HlipClipImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  visual->trunk->reset_parameters();
  visual->head->proj->reset_parameters();
  text->reset_parameters();
  logit_scale.fill_(config_.init_logit_scale);
  if (logit_bias.defined()) logit_bias.fill_(*config_.init_logit_bias);
}

at::Tensor HlipClipImpl::encode_image(const at::Tensor& image, bool normalize, VisionTrace* trace) {
  if (image.dim() != 6 || image.size(2) != 1) {
    throw Error(
        fmt::format("encode_image: image must be [B, N, 1, D, H, W], got {}", c10::str(image.sizes())));
  }
  const at::Tensor features = visual->forward(image, trace);
  return normalize ? l2_normalize(features) : features;
}

at::Tensor HlipClipImpl::encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask,
                                     bool normalize, TextOutput* trace) {
  TextOutput out = text->forward(input_ids, attention_mask);
  at::Tensor features = normalize ? l2_normalize(out.features) : out.features;
  if (trace != nullptr) *trace = std::move(out);
  return features;
}

ClipOutput HlipClipImpl::forward(const at::Tensor& image, const at::Tensor& input_ids,
                                 const at::Tensor& attention_mask) {
  ClipOutput out;
  out.image_features = encode_image(image);
  out.text_features = encode_text(input_ids, attention_mask);
  out.logit_scale = logit_scale.exp();
  out.logit_bias = logit_bias;
  return out;
}

void HlipClipImpl::lock_text(int64_t unlocked_layers, bool freeze_layer_norm) {
  text->lock(unlocked_layers, freeze_layer_norm);
}

void HlipClipImpl::set_grad_checkpointing(bool enable) {
  visual->trunk->set_grad_checkpointing(enable);
  config_.vision.grad_checkpointing = enable;
}

void HlipClipImpl::clamp_logit_scale() {
  at::NoGradGuard no_grad;
  logit_scale.clamp_(0.0, kMaxLogitScale);
  const bool dual = config_.vision.pooling != Pooling::kCls && config_.vision.num_prefix_tokens() == 2;
  if (logit_bias.defined() && dual) {
    logit_bias.clamp_(0.0, kMaxLogitScale);
  }
}

std::map<std::string, at::Tensor> forward_outputs(HlipClipImpl& model,
                                                  const std::map<std::string, at::Tensor>& inputs) {
  at::NoGradGuard no_grad;
  const auto find = [&](const char* name) {
    const auto it = inputs.find(name);
    return it == inputs.end() ? at::Tensor() : it->second;
  };
  const at::Tensor image = find("image"), image_alt = find("image_alt"), ids = find("input_ids"),
                   mask = find("attention_mask");
  if (!image.defined() && !ids.defined())
    throw Error("forward: the inputs hold neither \"image\" nor \"input_ids\"");
  const auto integer_ids = [](const char* name, const at::Tensor& t) {
    if (at::isFloatingType(t.scalar_type()) || t.scalar_type() == at::kBool) {
      throw Error(
          fmt::format("forward: {} must hold integers, got {}", name, c10::toString(t.scalar_type())));
    }
    return t.to(at::kLong);
  };

  std::map<std::string, at::Tensor> out;
  at::Tensor text_embeds;
  if (ids.defined()) {
    TextOutput text;
    text_embeds =
        model.encode_text(integer_ids("input_ids", ids),
                          mask.defined() ? integer_ids("attention_mask", mask) : at::Tensor(), true, &text);
    out["text.last_hidden_state"] = text.last_hidden_state;
    out["text.pooled"] = text.pooled;
    out["text_features"] = text.features;
    out["text_embeds"] = text_embeds;
  }
  const at::ScalarType dtype = model.logit_scale.scalar_type();
  const auto image_outputs = [&](const std::string& prefix, const at::Tensor& input) {
    if (!at::isFloatingType(input.scalar_type())) {
      throw Error(fmt::format("forward: {} must be floating point, got {}",
                              prefix.empty() ? "image" : "image_alt", c10::toString(input.scalar_type())));
    }
    VisionTrace trace;
    const at::Tensor features = model.encode_image(input.to(dtype), /*normalize=*/false, &trace);
    const int64_t scans = input.size(1);
    if (trace.pos_embed.defined() && trace.pos_embed.size(1) != scans) {
      std::vector<int64_t> shape = trace.pos_embed.sizes().vec();
      shape[1] = scans;
      trace.pos_embed = trace.pos_embed.expand(shape);
    }
    for (auto& [name, tensor] : named_tensors(trace, prefix + "vision."))
      out[name] = tensor;
    const at::Tensor embeds = l2_normalize(features);
    out[prefix + "image_features"] = features;
    out[prefix + "image_embeds"] = embeds;
    if (!text_embeds.defined()) return;
    out[prefix + "logits_per_image"] =
        model.logit_scale.exp() * at::einsum("bpe,te->bpt", {embeds, text_embeds});
    if (embeds.size(1) == 2 && model.logit_bias.defined()) {
      out[prefix + "logits_report"] =
          model.logit_bias.exp() * at::matmul(embeds.select(1, 1), text_embeds.t());
    }
  };
  if (image.defined()) image_outputs("", image);
  if (image_alt.defined()) image_outputs("alt.", image_alt);
  for (auto& [name, tensor] : out)
    tensor = tensor.contiguous();
  return out;
}

}  // namespace hlip::model
