// Relevance maps (explain.h): gradient × input checked against finite differences of the score through a
// small random model in float64 (the sum of the map over any region is the directional derivative of the
// score along that region's intensities), the default class, bad class indices, and explain_study: one
// map per input volume on that volume's own grid, CT windows summed, and a bright blob on a noisy
// background, on a permuted and flipped affine, carrying more relevance per voxel than the rest.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/eval/embed.h"
#include "hlip/eval/explain.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/model/clip.h"
#include "hlip/preprocess/grid.h"
#include "hlip/preprocess/preset.h"
#include "hlip/text/tokenizer.h"

namespace hlip::eval {
namespace {

model::HlipClip tiny_model() {
  const model::ClipConfig config = model::read_clip_config(std::string(HLIP_TEST_DATA_DIR) +
                                                           "/clip/tiny-cls-scanstudy/open_clip_config.json");
  at::manual_seed(5);
  return model::HlipClip(config);
}

text::Tokenizer tiny_tokenizer() {
  std::vector<std::string> tokens{"[PAD]", "[UNK]", "[CLS]", "[SEP]",  "[MASK]", "this",   "study",
                                  "shows", ":",     ".",     "glioma", "stroke", "normal", "no"};
  return text::Tokenizer{text::Vocab(tokens)};
}

// The tiny model's input grid: 8 × 24 × 40, the "eval" geometry from a 40-voxel square.
preprocess::Preset tiny_preset(const std::string& modality = "mri") {
  preprocess::Preset preset = preprocess::preset_for_modality(modality);
  preset.name = "tiny";
  preset.output_size = {8, 24, 40};
  preset.resize_size = 40;
  return preset;
}

TEST(Relevance, EqualsFiniteDifferencesOfTheScore) {
  model::HlipClip clip = tiny_model();
  clip->to(at::kDouble);
  const text::Tokenizer tokenizer = tiny_tokenizer();
  for (const ZeroShotTask& task :
       {task_from_classes({"normal", "glioma", "stroke"}), load_task("synth-anomaly")}) {
    const ZeroShotClassifier classifier(*clip, tokenizer, task);
    const data::Normalization normalization;
    at::manual_seed(11);
    const at::Tensor x01 = at::rand({2, 1, 8, 24, 40}, at::kDouble);  // the [0, 1] scans
    const auto normalise = [&](const at::Tensor& x) { return (x - normalization.mean) / normalization.std; };
    const Relevance relevance = relevance_map(*clip, classifier, normalise(x01), 1, normalization);
    ASSERT_EQ(relevance.map.sizes(), (std::vector<int64_t>{2, 8, 24, 40}));
    EXPECT_EQ(relevance.class_index, 1);
    const auto score = [&](const at::Tensor& x) {
      at::NoGradGuard no_grad;
      clip->eval();
      return classifier.score(clip->encode_image(normalise(x).unsqueeze(0)))[0][1].item<double>();
    };
    EXPECT_NEAR(score(x01), relevance.scores[1].item<double>(), 1e-12);
    // Regions: one block of the second scan, the whole first scan, everything.
    at::Tensor block = at::zeros_like(x01);
    block[1].slice(1, 2, 5).slice(2, 4, 16).slice(3, 20, 36).fill_(1.0);
    at::Tensor first = at::zeros_like(x01);
    first[0].fill_(1.0);
    for (const at::Tensor& mask : {block, first, at::ones_like(x01)}) {
      const double t = 1e-5;
      const at::Tensor direction = x01 * mask;
      const double derivative = (score(x01 + t * direction) - score(x01 - t * direction)) / (2 * t);
      const double mapped = (relevance.map.to(at::kDouble) * mask.squeeze(1)).sum().item<double>();
      EXPECT_NEAR(mapped, derivative, 1e-4 * std::abs(derivative) + 1e-7) << task.name;
      EXPECT_GT(std::abs(derivative), 1e-6) << task.name;  // the region matters at all
    }
  }
}

TEST(Relevance, ExplainsTheTopClassByDefaultAndRejectsBadClasses) {
  model::HlipClip clip = tiny_model();
  const text::Tokenizer tokenizer = tiny_tokenizer();
  const ZeroShotClassifier classifier(*clip, tokenizer, task_from_classes({"normal", "glioma", "stroke"}));
  at::manual_seed(2);
  const at::Tensor image = at::randn({1, 1, 8, 24, 40});
  clip->train();
  const Relevance top = relevance_map(*clip, classifier, image);
  EXPECT_TRUE(clip->is_training());  // restored
  EXPECT_EQ(top.class_index, top.scores.argmax().item<int64_t>());
  EXPECT_TRUE(at::allclose(top.features[0], embed_study(*clip, image), 1e-5, 1e-6));
  const Relevance again = relevance_map(*clip, classifier, image);
  EXPECT_TRUE(at::equal(top.map, again.map));  // deterministic
  EXPECT_GT(top.map.abs().max().item<float>(), 0.0f);
  EXPECT_THROW(relevance_map(*clip, classifier, image, 3), Error);
  EXPECT_THROW(relevance_map(*clip, classifier, image.squeeze(1)), Error);
}

// A volume whose axes are permuted and flipped against RAS+ (i superior at 2.5 mm, j left, k anterior).
io::Volume oblique_volume(const at::Tensor& data) {
  io::Volume volume = io::volume_from_tensor(data, {2.5, 1.0, 1.1}, "blob");
  volume.affine = {{{0.0, -1.0, 0.0, 10.0}, {0.0, 0.0, 1.1, -20.0}, {2.5, 0.0, 0.0, 30.0}, {0, 0, 0, 1}}};
  return volume;
}

TEST(ExplainStudy, ABrightBlobCarriesTheRelevanceOnEachVolumesOwnGrid) {
  model::HlipClip clip = tiny_model();
  const text::Tokenizer tokenizer = tiny_tokenizer();
  const ZeroShotClassifier classifier(*clip, tokenizer, task_from_classes({"normal", "glioma", "stroke"}));
  at::manual_seed(4);
  at::Tensor blob = 200.0 + 100.0 * at::rand({16, 30, 36});
  // Off-centre on every axis, so a flipped or shifted map would miss it (k beyond 7..28 is cropped away).
  blob.slice(0, 2, 6).slice(1, 4, 11).slice(2, 10, 17).fill_(1000.0);
  const at::Tensor plain = 200.0 + 100.0 * at::rand({20, 26, 24});
  const std::vector<io::Volume> volumes = {oblique_volume(blob), io::volume_from_tensor(plain, {1, 1, 1})};
  // Scans of one study must agree on the model grid, which the "eval" geometry gives any input.
  const preprocess::Preset preset = tiny_preset();
  const StudyExplanation explanation = explain_study(*clip, classifier, volumes, preset, 2);
  EXPECT_EQ(explanation.relevance.class_index, 2);
  ASSERT_EQ(explanation.maps.size(), 2u);
  EXPECT_EQ(explanation.maps[0].sizes(), blob.sizes());
  EXPECT_EQ(explanation.maps[1].sizes(), plain.sizes());
  EXPECT_EQ(explanation.model_to_world[0], preprocess::model_voxel_to_world(volumes[0], preset));

  const at::Tensor magnitude = explanation.maps[0].abs();
  at::Tensor inside = at::zeros_like(magnitude, at::kBool);
  inside.slice(0, 2, 6).slice(1, 4, 11).slice(2, 10, 17).fill_(true);
  const double in_mean = magnitude.masked_select(inside).mean().item<double>();
  const double out_mean = magnitude.masked_select(inside.logical_not()).mean().item<double>();
  EXPECT_GT(in_mean, 2.0 * out_mean) << in_mean << " vs " << out_mean;
  // The same blob mirrored along each axis in turn holds less relevance than the blob itself.
  for (int64_t axis = 0; axis < 3; ++axis) {
    const double mirrored = magnitude.masked_select(inside.flip(axis)).mean().item<double>();
    EXPECT_GT(in_mean, 1.5 * mirrored) << "axis " << axis;
  }
  // The blob's map is the first scan's model-grid map, resampled: the same total up to the change of grid.
  EXPECT_GT(explanation.relevance.map[0].abs().sum().item<double>(), 0.0);
}

TEST(ExplainStudy, SumsTheWindowsOfACtVolume) {
  model::HlipClip clip = tiny_model();
  const text::Tokenizer tokenizer = tiny_tokenizer();
  const ZeroShotClassifier classifier(*clip, tokenizer, task_from_classes({"normal", "stroke"}));
  at::manual_seed(6);
  const io::Volume ct = io::volume_from_tensor(-100.0 + 200.0 * at::rand({12, 30, 30}), {1, 1, 3});
  const preprocess::Preset preset = tiny_preset("ct");  // ct-head: brain, subdural and bone windows
  ASSERT_EQ(preset.windows.size(), 3u);
  const StudyExplanation explanation = explain_study(*clip, classifier, {ct}, preset);
  EXPECT_EQ(explanation.scans_per_volume, (std::vector<int64_t>{3}));
  ASSERT_EQ(explanation.relevance.map.size(0), 3);
  ASSERT_EQ(explanation.maps.size(), 1u);
  const at::Tensor summed = explanation.relevance.map.sum(0);
  EXPECT_TRUE(at::allclose(explanation.maps[0], preprocess::resample_to_source(summed, ct, preset)));
}

}  // namespace
}  // namespace hlip::eval
