#pragma once
// Relevance maps for single-study zero-shot (`hlip zeroshot --study ... --explain DIR`): which voxels of a
// study's scans raised the score of one class.
//
//   hlip::eval::ZeroShotClassifier classifier(*clip, tokenizer, hlip::eval::load_task("synth-brain-5"));
//   std::vector<hlip::io::Volume> scans = {hlip::io::read_volume("t1.nii.gz"),
//                                          hlip::io::read_volume("flair.nii.gz")};
//   auto preset = hlip::preprocess::preset_by_name("mri-brain");
//   hlip::eval::StudyExplanation e = hlip::eval::explain_study(*clip, classifier, scans, preset);  // top
//   class hlip::io::write_nifti("t1_relevance.nii.gz", e.maps[0], scans[0].affine);   // overlays t1.nii.gz
//
// The method is gradient × input (Shrikumar et al. 2016; Simonyan et al. 2014 for the gradient): the
// relevance of voxel v is ∂score/∂x_v · x_v, where x is the preprocessed scan in [0, 1] before the
// normalisation, so the baseline is intensity 0, the value preprocessing pads with. It is a first-order
// estimate of how much the voxel's intensity contributes to the class's score (the task's score: a cosine,
// or a softmax probability). Signed: positive voxels support the class, negative ones speak against it.
// Deterministic: one forward and one backward pass, no sampling.

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "hlip/data/dataset.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/io/volume.h"
#include "hlip/model/clip.h"
#include "hlip/preprocess/preset.h"

namespace hlip::eval {

struct Relevance {
  int64_t class_index = 0;  // the class explained
  at::Tensor scores;        // float64 [K]: every class's score, from the same forward pass
  at::Tensor features;      // float32 [1, P, E]: the study's image embedding (unit rows)
  at::Tensor map;           // float32 [N, D, H, W]: gradient × input, per scan, on the model grid
};

// One study's normalised image [N, 1, D, H, W] (as study_image_from_volumes gives it) -> the relevance of
// class `class_index` of the classifier's task; -1 explains the class with the highest score (the first on
// ties). The model runs in eval mode (its training mode is restored) with gradients for the image only;
// `normalization` must be the one the image was built with. A class index out of range is an hlip::Error.
Relevance relevance_map(model::HlipClipImpl& model, const ZeroShotClassifier& classifier,
                        const at::Tensor& image, int64_t class_index = -1,
                        const data::Normalization& normalization = {});

struct StudyExplanation {
  Relevance relevance;
  std::vector<int64_t> scans_per_volume;   // model scans each volume gave (CT windows)
  std::vector<at::Tensor> maps;            // per volume: float32 [I, J, K] on the volume's own grid
  std::vector<io::Affine> model_to_world;  // per volume: model voxel (d, h, w) -> world RAS+ mm
};

// The volumes of one study through `preset` and relevance_map; each volume's map (the sum over the scans it
// gave, e.g. its CT windows) resampled back onto its own voxel grid (preprocess::resample_to_source), so
// written with the volume's affine it overlays the volume in any viewer.
StudyExplanation explain_study(model::HlipClipImpl& model, const ZeroShotClassifier& classifier,
                               const std::vector<io::Volume>& volumes, const preprocess::Preset& preset,
                               int64_t class_index = -1, const data::Normalization& normalization = {});

}  // namespace hlip::eval
