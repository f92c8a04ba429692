#pragma once
// What an arm costs (docs/ablation.md, "Costs"): tokens per scan, parameters and FLOPs per study from the
// model config alone, and the measured step time, throughput and memory of a finished run.
//
//   auto model = hlip::model::read_clip_config("arms/<id>/model.json");
//   double flops = hlip::ablate::vision_flops_per_study(model.vision, /*num_scans=*/4, /*training=*/true);

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "hlip/model/clip.h"

namespace hlip::ablate {

// Patch tokens of one scan: d·h·w of the grid (img_size / patch_size, remainders dropped).
int64_t tokens_per_scan(const model::VisionOptions& vision);

// Parameters of the whole model (vision and text towers, logit scale and bias), frozen embeddings included.
int64_t parameter_count(const model::ClipConfig& config);

// Forward FLOPs (2 per multiply-add) of the vision tower for one study of `num_scans` scans: the patch
// embedding, then per block and window Q/K/V and output projections, attention scores and weighted sums,
// and the MLP, then the projection head. With `training`, the patch tokens that patch dropout removes (per
// block-0 window, max(1, int(L·(1 − p))) kept) are not counted. Norms, softmax and GELU are left out.
double vision_flops_per_study(const model::VisionOptions& vision, int64_t num_scans, bool training);

struct RunCost {
  double wall_s = 0;                      // the training process, start to end
  std::optional<double> step_s_median;    // metrics.jsonl step_s
  std::optional<double> studies_per_s;    // median of metrics.jsonl studies_per_s
  int64_t peak_rss_bytes = 0;             // the training process (wait4's ru_maxrss)
  std::optional<int64_t> peak_gpu_bytes;  // none without a GPU
  int64_t tokens_per_scan = 0;
  int64_t params = 0;
  double flops_per_study = 0;  // training forward, vision tower
  nlohmann::json to_json() const;
};

// Fills the step time and throughput from a run folder's metrics.jsonl (median over logged steps, the first
// logged step left out when there are others: it includes start-up).
void read_step_metrics(const std::string& metrics_jsonl, RunCost& cost);

}  // namespace hlip::ablate
