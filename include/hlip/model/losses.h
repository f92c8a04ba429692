#pragma once
// HLIP's contrastive losses (spec section 6): open_clip's ClipLoss (with its local-loss variant for features
// gathered from several ranks or micro-batches), SigLipLoss, and HLIP's dual loss for models with a sentence
// row and a report row. Features are expected L2-normalised; scales follow open_clip: `logit_scale` is
// already exp()'d (ClipOutput::logit_scale), `logit_bias` is the raw parameter.
//
//   hlip::model::ClipOutput out = clip->forward(image, ids);            // sentences then reports in `ids`
//   auto [sentences, reports] = hlip::model::split_text_features(out.text_features, image.size(0));
//   hlip::model::HlipLoss loss = hlip::model::hlip_loss(out.image_features, sentences, reports,
//                                                       out.logit_scale, out.logit_bias);
//   loss.total.backward();
//   log("loss", loss.total, "sentence", loss.sentence, "report", loss.report);

#include <cstdint>
#include <utility>

#include <ATen/ATen.h>

namespace hlip::model {

// Symmetric InfoNCE: (CE(s·I·Tᵀ, arange) + CE(s·T·Iᵀ, arange)) / 2, CE the mean over rows.
// image, text [B, E]; logit_scale s (0-dim, exp'd).
at::Tensor clip_loss(const at::Tensor& image, const at::Tensor& text, const at::Tensor& logit_scale);

// open_clip's `local_loss`: the B local rows against every gathered column, labels offset + arange(B):
// (CE(s·I·T_allᵀ) + CE(s·T·I_allᵀ)) / 2. `offset` is where the local rows sit in the gathered batch
// (rank · B). With image_all = image, text_all = text and offset 0 it equals clip_loss. (open_clip's
// non-local mode with gathered features is clip_loss(image_all, text_all, s).)
at::Tensor clip_loss_local(const at::Tensor& image, const at::Tensor& text, const at::Tensor& image_all,
                           const at::Tensor& text_all, const at::Tensor& logit_scale, int64_t offset);

// SigLIP: −Σ_ij log σ(y_ij · (s·I_i·T_j + b)) / B with y = +1 on the diagonal and −1 elsewhere, or −1
// everywhere when `negative_only` (open_clip's extra terms for another rank's text block). image, text [B,
// E]; logit_scale exp'd, logit_bias raw.
at::Tensor siglip_loss(const at::Tensor& image, const at::Tensor& text, const at::Tensor& logit_scale,
                       const at::Tensor& logit_bias, bool negative_only = false);

// The weight of each term of the dual loss.
inline constexpr double kDualLossWeight = 0.5;

struct HlipLoss {
  at::Tensor total;     // what to differentiate
  at::Tensor sentence;  // CLIP of image row 0 against the sentence texts
  at::Tensor report;    // dual only: CLIP of image row 1 against the report texts; undefined otherwise
};

// Features gathered from every rank or micro-batch, for the local-loss form of hlip_loss: the local rows sit
// at [offset, offset + B) of these.
struct GatheredFeatures {
  at::Tensor image;     // [B_all, P, E]
  at::Tensor sentence;  // [B_all, E]
  at::Tensor report;    // [B_all, E], dual only
  int64_t offset = 0;
};

// HLIP's training loss. image [B, P, E] (or [B, E] for P = 1):
//  * P = 1: total = sentence = CLIP(image row 0, sentence; s = logit_scale); `report` and logit_bias unused.
//  * P = 2 (dual): sentence = CLIP(row 0, sentence; s = logit_scale), report = CLIP(row 1, report;
//    s = exp(logit_bias)), total = 0.5 · sentence + 0.5 · report. logit_bias (raw) is the report loss's
//    log-temperature, never added to logits.
// With `gathered`, every term is clip_loss_local against the gathered features.
HlipLoss hlip_loss(const at::Tensor& image, const at::Tensor& sentence, const at::Tensor& report,
                   const at::Tensor& logit_scale, const at::Tensor& logit_bias,
                   const GatheredFeatures* gathered = nullptr);

// HLIP encodes sentences and reports as one text batch (sentences first): text_features [2B, E] ->
// (sentences [B, E], reports [B, E]). With exactly B rows (P = 1 models) the reports are undefined.
std::pair<at::Tensor, at::Tensor> split_text_features(const at::Tensor& text_features, int64_t batch);

}  // namespace hlip::model
