#include "hlip/model/losses.h"

#include <fmt/format.h>

#include "hlip/core/error.h"

namespace hlip::model {
namespace {

void check_pair(const char* what, const at::Tensor& image, const at::Tensor& text) {
  if (!image.defined() || !text.defined())
    throw Error(fmt::format("{}: image and text features are required", what));
  if (image.dim() != 2 || text.dim() != 2 || image.size(1) != text.size(1)) {
    throw Error(fmt::format("{}: features must be [B, E] with the same E, got image {} and text {}", what,
                            c10::str(image.sizes()), c10::str(text.sizes())));
  }
}

void check_scalar(const char* what, const char* name, const at::Tensor& t) {
  if (!t.defined() || t.numel() != 1)
    throw Error(fmt::format("{}: {} must be a one-element tensor", what, name));
}

// Row `index` of image features [B, P, E]; [B, E] counts as P = 1.
at::Tensor image_row(const at::Tensor& image, int64_t index) {
  return image.dim() == 2 ? image : image.select(1, index);
}

}  // namespace

at::Tensor clip_loss(const at::Tensor& image, const at::Tensor& text, const at::Tensor& logit_scale) {
  check_pair("clip_loss", image, text);
  if (image.size(0) != text.size(0)) {
    throw Error(
        fmt::format("clip_loss: {} images against {} texts; pairs are needed", image.size(0), text.size(0)));
  }
  return clip_loss_local(image, text, image, text, logit_scale, 0);
}

at::Tensor clip_loss_local(const at::Tensor& image, const at::Tensor& text, const at::Tensor& image_all,
                           const at::Tensor& text_all, const at::Tensor& logit_scale, int64_t offset) {
  check_pair("clip_loss", image, text);
  check_pair("clip_loss (gathered)", image_all, text_all);
  check_scalar("clip_loss", "logit_scale", logit_scale);
  const int64_t rows = image.size(0);
  if (text.size(0) != rows || image_all.size(0) != text_all.size(0) || offset < 0 ||
      offset + rows > image_all.size(0) || image.size(1) != image_all.size(1)) {
    throw Error(fmt::format(
        "clip_loss: local image {} / text {} at offset {} do not fit the gathered image {} / text {}",
        c10::str(image.sizes()), c10::str(text.sizes()), offset, c10::str(image_all.sizes()),
        c10::str(text_all.sizes())));
  }
  const at::Tensor scale = logit_scale.reshape({});
  const at::Tensor labels = at::arange(offset, offset + rows, image.options().dtype(at::kLong));
  const at::Tensor logits_per_image = scale * at::matmul(image, text_all.t());
  const at::Tensor logits_per_text = scale * at::matmul(text, image_all.t());
  return (at::cross_entropy_loss(logits_per_image, labels) +
          at::cross_entropy_loss(logits_per_text, labels)) /
         2;
}

at::Tensor siglip_loss(const at::Tensor& image, const at::Tensor& text, const at::Tensor& logit_scale,
                       const at::Tensor& logit_bias, bool negative_only) {
  check_pair("siglip_loss", image, text);
  check_scalar("siglip_loss", "logit_scale", logit_scale);
  check_scalar("siglip_loss", "logit_bias", logit_bias);
  if (image.size(0) != text.size(0)) {
    throw Error(fmt::format("siglip_loss: {} images against {} texts; blocks must be square", image.size(0),
                            text.size(0)));
  }
  const int64_t rows = image.size(0);
  const at::Tensor logits = logit_scale.reshape({}) * at::matmul(image, text.t()) + logit_bias.reshape({});
  at::Tensor labels = at::full({rows, rows}, -1.0, logits.options());
  if (!negative_only) labels = labels + 2 * at::eye(rows, logits.options());
  return -at::log_sigmoid(labels * logits).sum() / static_cast<double>(rows);
}

HlipLoss hlip_loss(const at::Tensor& image, const at::Tensor& sentence, const at::Tensor& report,
                   const at::Tensor& logit_scale, const at::Tensor& logit_bias,
                   const GatheredFeatures* gathered) {
  if (!image.defined() || (image.dim() != 2 && image.dim() != 3)) {
    throw Error("hlip_loss: image features must be [B, P, E] or [B, E]");
  }
  const int64_t rows = image.dim() == 2 ? 1 : image.size(1);
  if (rows != 1 && rows != 2)
    throw Error(fmt::format("hlip_loss: {} image rows per study; 1 or 2 expected", rows));
  const auto term = [&](int64_t row, const at::Tensor& text, const at::Tensor& all_text,
                        const at::Tensor& scale) {
    if (gathered == nullptr) return clip_loss(image_row(image, row), text, scale);
    return clip_loss_local(image_row(image, row), text, image_row(gathered->image, row), all_text, scale,
                           gathered->offset);
  };
  HlipLoss loss;
  loss.sentence = term(0, sentence, gathered ? gathered->sentence : at::Tensor(), logit_scale);
  if (rows == 1) {
    loss.total = loss.sentence;
    return loss;
  }
  if (!report.defined()) throw Error("hlip_loss: a dual model (2 image rows) needs report features");
  if (!logit_bias.defined()) {
    throw Error(
        "hlip_loss: a dual model needs logit_bias (init_logit_bias in the config), the report temperature");
  }
  check_scalar("hlip_loss", "logit_bias", logit_bias);
  loss.report = term(1, report, gathered ? gathered->report : at::Tensor(), logit_bias.reshape({}).exp());
  loss.total = kDualLossWeight * loss.sentence + kDualLossWeight * loss.report;
  return loss;
}

std::pair<at::Tensor, at::Tensor> split_text_features(const at::Tensor& text_features, int64_t batch) {
  if (!text_features.defined() || text_features.dim() != 2 || batch <= 0) {
    throw Error("split_text_features: text features must be [T, E] and the batch positive");
  }
  if (text_features.size(0) == batch) return {text_features, at::Tensor()};
  if (text_features.size(0) != 2 * batch) {
    throw Error(fmt::format(
        "split_text_features: {} texts for {} studies; expected {} or {} (sentences, then reports)",
        text_features.size(0), batch, batch, 2 * batch));
  }
  return {text_features.narrow(0, 0, batch), text_features.narrow(0, batch, batch)};
}

}  // namespace hlip::model
