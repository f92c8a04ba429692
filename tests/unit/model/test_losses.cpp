// CLIP, SigLIP and HLIP dual losses (spec section 6): hand-computed cases, and values and gradients from the
// independent float64 generator tests/ref/make_loss_ref.py.

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/losses.h"

namespace hlip::model {
namespace {

at::Tensor scalar(double value, bool requires_grad = false) {
  return at::full({}, value, at::kDouble).set_requires_grad(requires_grad);
}

const std::map<std::string, at::Tensor>& reference() {
  static const std::map<std::string, at::Tensor> tensors =
      io::read_safetensors(std::string(HLIP_TEST_DATA_DIR) + "/loss/cases.safetensors").tensors;
  return tensors;
}

// A leaf copy of reference tensor `name` that records gradients.
at::Tensor leaf(const std::string& name) {
  return reference().at(name).clone().set_requires_grad(true);
}

void expect_close(const at::Tensor& actual, const std::string& name, double tolerance = 1e-10) {
  const at::Tensor& expected = reference().at(name);
  ASSERT_EQ(actual.sizes(), expected.sizes()) << name;
  const double diff = (actual.detach() - expected).abs().max().item<double>();
  EXPECT_LE(diff, tolerance) << name;
}

TEST(ClipLoss, HandComputedIdentityPairs) {
  // Two orthonormal pairs, s = 1: each row's logits are (1, 0), CE = log(1 + e^-1), in both directions.
  const at::Tensor eye = at::eye(2, at::kDouble);
  EXPECT_NEAR(clip_loss(eye, eye, scalar(1.0)).item<double>(), std::log1p(std::exp(-1.0)), 1e-14);
  // One pair: a single class, the loss is exactly 0 whatever the features.
  const at::Tensor one = at::ones({1, 3}, at::kDouble) / std::sqrt(3.0);
  EXPECT_EQ(clip_loss(one, one, scalar(14.0)).item<double>(), 0.0);
  // Swapping the texts makes the pairs wrong: row 0 logits (0, 1) -> CE = log(1 + e).
  const at::Tensor swapped = at::flip(eye, {0});
  EXPECT_NEAR(clip_loss(eye, swapped, scalar(1.0)).item<double>(), std::log1p(std::exp(1.0)), 1e-14);
}

TEST(ClipLoss, MatchesReferenceValuesAndGradients) {
  for (const std::string c : {"clip_b1", "clip_b5", "clip_s100"}) {
    at::Tensor image = leaf(c + ".image"), text = leaf(c + ".text"), raw = leaf(c + ".logit_scale_raw");
    const at::Tensor loss = clip_loss(image, text, raw.exp());
    expect_close(loss, c + ".loss");
    loss.backward();
    expect_close(image.grad(), c + ".grad.image");
    expect_close(text.grad(), c + ".grad.text");
    expect_close(raw.grad(), c + ".grad.logit_scale_raw");
  }
}

TEST(ClipLoss, LocalRowsAgainstGatheredColumns) {
  const auto& r = reference();
  at::Tensor image = leaf("clip_local.image"), text = leaf("clip_local.text");
  at::Tensor raw = leaf("clip_local.logit_scale_raw");
  const at::Tensor all_image = r.at("clip_local.all_image"), all_text = r.at("clip_local.all_text");
  // This rank's rows 2 and 3 carry gradients; the other ranks' rows are constants, as after all_gather.
  const at::Tensor gathered_image = at::cat({all_image.narrow(0, 0, 2), image, all_image.narrow(0, 4, 2)});
  const at::Tensor gathered_text = at::cat({all_text.narrow(0, 0, 2), text, all_text.narrow(0, 4, 2)});
  const at::Tensor loss = clip_loss_local(image, text, gathered_image, gathered_text, raw.exp(), 2);
  expect_close(loss, "clip_local.loss");
  loss.backward();
  expect_close(image.grad(), "clip_local.grad.image");
  expect_close(text.grad(), "clip_local.grad.text");
  expect_close(raw.grad(), "clip_local.grad.logit_scale_raw");

  // The same through hlip_loss with gathered features (P = 1).
  GatheredFeatures gathered;
  gathered.image = gathered_image.detach().unsqueeze(1);
  gathered.sentence = gathered_text.detach();
  gathered.offset = 2;
  const HlipLoss via_hlip =
      hlip_loss(image.detach().unsqueeze(1), text.detach(), {}, raw.detach().exp(), {}, &gathered);
  expect_close(via_hlip.total, "clip_local.loss");
  EXPECT_FALSE(via_hlip.report.defined());
  // With everything local and offset 0 it is the plain CLIP loss.
  EXPECT_NEAR(clip_loss_local(all_image, all_text, all_image, all_text, scalar(3.0), 0).item<double>(),
              clip_loss(all_image, all_text, scalar(3.0)).item<double>(), 1e-14);
  EXPECT_THROW(clip_loss_local(image, text, gathered_image, gathered_text, raw.exp(), 5), Error);
}

TEST(SigLipLoss, HandComputed) {
  // s = 1, b = 0, identity pairs: diagonal terms -log sigma(1), off-diagonal -log sigma(-0) = log 2; / B = 2.
  const at::Tensor eye = at::eye(2, at::kDouble);
  const double expected = (2 * std::log1p(std::exp(-1.0)) + 2 * std::log(2.0)) / 2;
  EXPECT_NEAR(siglip_loss(eye, eye, scalar(1.0), scalar(0.0)).item<double>(), expected, 1e-14);
  // Negative only: every pair counts as a negative: 2 (-log sigma(-1)) + 2 log 2, / 2.
  const double negative = (2 * std::log1p(std::exp(1.0)) + 2 * std::log(2.0)) / 2;
  EXPECT_NEAR(siglip_loss(eye, eye, scalar(1.0), scalar(0.0), true).item<double>(), negative, 1e-14);
}

TEST(SigLipLoss, MatchesReferenceValuesAndGradients) {
  for (const std::string c : {"siglip", "siglip_negative"}) {
    at::Tensor image = leaf(c + ".image"), text = leaf(c + ".text"), raw = leaf(c + ".logit_scale_raw");
    at::Tensor bias = leaf(c + ".logit_bias");
    const at::Tensor loss = siglip_loss(image, text, raw.exp(), bias, c == "siglip_negative");
    expect_close(loss, c + ".loss");
    loss.backward();
    expect_close(image.grad(), c + ".grad.image");
    expect_close(text.grad(), c + ".grad.text");
    expect_close(raw.grad(), c + ".grad.logit_scale_raw");
    expect_close(bias.grad(), c + ".grad.logit_bias");
  }
}

TEST(DualLoss, MatchesReferenceValuesAndGradients) {
  at::Tensor image = leaf("dual.image"), sentence = leaf("dual.sentence"), report = leaf("dual.report");
  at::Tensor scale_raw = leaf("dual.logit_scale_raw"), bias_raw = leaf("dual.logit_bias_raw");
  // As the model hands them over: logit_scale exp'd, logit_bias raw.
  const HlipLoss loss = hlip_loss(image, sentence, report, scale_raw.exp(), bias_raw);
  expect_close(loss.total, "dual.loss");
  expect_close(loss.sentence, "dual.loss_sentence");
  expect_close(loss.report, "dual.loss_report");
  loss.total.backward();
  for (const auto& [name, tensor] : std::map<std::string, at::Tensor>{{"image", image},
                                                                      {"sentence", sentence},
                                                                      {"report", report},
                                                                      {"logit_scale_raw", scale_raw},
                                                                      {"logit_bias_raw", bias_raw}}) {
    expect_close(tensor.grad(), "dual.grad." + name);
  }
}

TEST(DualLoss, HandComputedHalves) {
  // Report row equal to the sentence row and the same temperature: both terms equal, total equals each.
  const at::Tensor eye = at::eye(2, at::kDouble);
  const at::Tensor image = at::stack({eye, eye}, 1);  // [2, 2, 2]
  const HlipLoss loss = hlip_loss(image, eye, eye, scalar(1.0), scalar(0.0));
  EXPECT_NEAR(loss.sentence.item<double>(), std::log1p(std::exp(-1.0)), 1e-14);
  EXPECT_NEAR(loss.report.item<double>(), loss.sentence.item<double>(), 1e-14);
  EXPECT_NEAR(loss.total.item<double>(), loss.sentence.item<double>(), 1e-14);
  // exp(logit_bias) scales the report term only: bias ln 2 doubles its logits.
  const HlipLoss scaled = hlip_loss(image, eye, eye, scalar(1.0), scalar(std::log(2.0)));
  EXPECT_NEAR(scaled.report.item<double>(), std::log1p(std::exp(-2.0)), 1e-14);
  EXPECT_NEAR(scaled.total.item<double>(),
              0.5 * std::log1p(std::exp(-1.0)) + 0.5 * std::log1p(std::exp(-2.0)), 1e-14);
}

TEST(DualLoss, SingleRowAndErrors) {
  const at::Tensor eye = at::eye(3, at::kDouble);
  const HlipLoss single = hlip_loss(eye.unsqueeze(1), eye, {}, scalar(2.0), {});
  EXPECT_NEAR(single.total.item<double>(), clip_loss(eye, eye, scalar(2.0)).item<double>(), 1e-14);
  EXPECT_FALSE(single.report.defined());
  const at::Tensor dual_image = at::stack({eye, eye}, 1);
  EXPECT_THROW(hlip_loss(dual_image, eye, eye, scalar(2.0), {}), Error);  // no report temperature
  EXPECT_THROW(hlip_loss(dual_image, eye, {}, scalar(2.0), scalar(1.0)), Error);
  EXPECT_THROW(clip_loss(eye, eye.narrow(0, 0, 2), scalar(1.0)), Error);
  EXPECT_THROW(clip_loss(eye, eye.narrow(1, 0, 2), scalar(1.0)), Error);
  EXPECT_THROW(siglip_loss(eye, eye, scalar(1.0), {}), Error);
}

TEST(DualLoss, SplitsSentenceThenReportTexts) {
  const at::Tensor texts = at::arange(12, at::kDouble).view({6, 2});
  const auto [sentences, reports] = split_text_features(texts, 3);
  EXPECT_TRUE(at::equal(sentences, texts.narrow(0, 0, 3)));
  EXPECT_TRUE(at::equal(reports, texts.narrow(0, 3, 3)));
  EXPECT_FALSE(split_text_features(texts, 6).second.defined());
  EXPECT_THROW(split_text_features(texts, 4), Error);
}

}  // namespace
}  // namespace hlip::model
