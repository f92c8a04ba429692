#include "hlip/eval/explain.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/csrc/autograd/autograd.h>

#include "hlip/core/error.h"
#include "hlip/eval/embed.h"
#include "hlip/preprocess/grid.h"

namespace hlip::eval {
namespace {

// Eval mode with gradients on, for one backward pass; the training mode is restored after.
class GradientScope {
 public:
  explicit GradientScope(model::HlipClipImpl& model) : model_(model), was_training_(model.is_training()) {
    model_.eval();
  }
  ~GradientScope() { model_.train(was_training_); }
  GradientScope(const GradientScope&) = delete;
  GradientScope& operator=(const GradientScope&) = delete;

 private:
  model::HlipClipImpl& model_;
  bool was_training_;
  c10::AutoGradMode grad_mode_{true};
};

}  // namespace

Relevance relevance_map(model::HlipClipImpl& model, const ZeroShotClassifier& classifier,
                        const at::Tensor& image, int64_t class_index,
                        const data::Normalization& normalization) {
  if (image.dim() != 5 || image.size(1) != 1) {
    throw Error(
        fmt::format("study image has shape [{}]; expected [N, 1, D, H, W]", fmt::join(image.sizes(), ", ")));
  }
  GradientScope scope(model);
  const at::Tensor reference = model.parameters().front();
  const at::Tensor input =
      image.unsqueeze(0).to(reference.device(), reference.scalar_type()).detach().requires_grad_(true);
  const at::Tensor features = model.encode_image(input);    // [1, P, E]
  const at::Tensor scores = classifier.score(features)[0];  // float64 [K]

  Relevance out;
  out.scores = scores.detach().contiguous();
  const int64_t classes = out.scores.size(0);
  if (class_index < 0) {
    const auto* values = out.scores.data_ptr<double>();
    class_index = 0;
    for (int64_t k = 1; k < classes; ++k) {
      if (values[k] > values[class_index]) class_index = k;
    }
  } else if (class_index >= classes) {
    throw Error(fmt::format("relevance: class index {} is out of range: task {} has {} classes", class_index,
                            classifier.task().name, classes));
  }
  out.class_index = class_index;
  const at::Tensor gradient = torch::autograd::grad({scores[class_index]}, {input})[0];
  // d score / d x01 = gradient / std for the unnormalised x01 = x · std + mean.
  const at::Tensor unnormalised = image.to(at::kFloat) * normalization.std + normalization.mean;
  const at::Tensor slope = gradient.squeeze(0).to(at::kCPU, at::kFloat) / normalization.std;
  out.map = (slope * unnormalised).squeeze(1).contiguous();
  out.features = features.detach().to(at::kCPU, at::kFloat).contiguous();
  return out;
}

StudyExplanation explain_study(model::HlipClipImpl& model, const ZeroShotClassifier& classifier,
                               const std::vector<io::Volume>& volumes, const preprocess::Preset& preset,
                               int64_t class_index, const data::Normalization& normalization) {
  StudyExplanation out;
  const at::Tensor image = study_image_from_volumes(volumes, preset, normalization, &out.scans_per_volume);
  out.relevance = relevance_map(model, classifier, image, class_index, normalization);
  int64_t first = 0;
  for (size_t v = 0; v < volumes.size(); ++v) {
    const int64_t count = out.scans_per_volume[v];
    const at::Tensor summed = out.relevance.map.narrow(0, first, count).sum(0);
    out.maps.push_back(preprocess::resample_to_source(summed, volumes[v], preset));
    out.model_to_world.push_back(preprocess::model_voxel_to_world(volumes[v], preset));
    first += count;
  }
  return out;
}

}  // namespace hlip::eval
