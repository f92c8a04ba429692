#include "hlip/ablate/costs.h"

#include <algorithm>
#include <fstream>
#include <vector>

namespace hlip::ablate {

using json = nlohmann::json;

int64_t tokens_per_scan(const model::VisionOptions& vision) {
  const auto grid = vision.grid_size();
  return grid[0] * grid[1] * grid[2];
}

int64_t parameter_count(const model::ClipConfig& config) {
  model::HlipClip model(config);
  int64_t count = 0;
  for (const auto& parameter : model->parameters())
    count += parameter.numel();
  return count;
}

double vision_flops_per_study(const model::VisionOptions& vision, int64_t num_scans, bool training) {
  const auto grid = vision.grid_size();
  const double c = static_cast<double>(vision.width);
  const double prefix = static_cast<double>(vision.num_prefix_tokens());
  const double scans = static_cast<double>(num_scans);
  const double per_scan = static_cast<double>(tokens_per_scan(vision));
  const double patch_voxels =
      static_cast<double>(vision.patch_size[0] * vision.patch_size[1] * vision.patch_size[2]);
  double flops = 2.0 * scans * per_scan * patch_voxels * c;  // patch embedding

  // Patch tokens kept per scan: patch dropout acts on every block-0 window.
  double kept_per_scan = per_scan;
  const model::AttentionLevel first =
      vision.attention_levels.empty() ? model::AttentionLevel::kScan : vision.attention_levels.front();
  if (training && vision.patch_dropout > 0) {
    const auto keep = [&](double tokens) {
      return static_cast<double>(
          std::max<int64_t>(1, static_cast<int64_t>(tokens * (1.0 - vision.patch_dropout))));
    };
    switch (first) {
      case model::AttentionLevel::kSlice:
        kept_per_scan = static_cast<double>(grid[0]) * keep(static_cast<double>(grid[1] * grid[2]));
        break;
      case model::AttentionLevel::kScan:
        kept_per_scan = keep(per_scan);
        break;
      case model::AttentionLevel::kStudy:
        kept_per_scan = keep(per_scan * scans) / scans;
        break;
    }
  }
  const double hidden = c * vision.mlp_ratio;
  for (const auto level : vision.attention_levels) {
    double windows = scans;
    double tokens = kept_per_scan;
    if (level == model::AttentionLevel::kSlice) {
      windows = scans * static_cast<double>(grid[0]);
      tokens = kept_per_scan / static_cast<double>(grid[0]);
    } else if (level == model::AttentionLevel::kStudy) {
      windows = 1;
      tokens = kept_per_scan * scans;
    }
    const double n = prefix + tokens;       // tokens in one window
    const double all = windows * n;         // tokens in the study at this block
    flops += 2.0 * all * c * 3.0 * c;       // q, k, v
    flops += 2.0 * windows * n * n * c;     // q·kᵀ over all heads
    flops += 2.0 * windows * n * n * c;     // attention-weighted sum of v
    flops += 2.0 * all * c * c;             // output projection
    flops += 2.0 * all * 2.0 * c * hidden;  // MLP, both layers
  }
  // Projection head: P rows of C (cls) or 2C (dino.txt, dual) features to E.
  const double pooled_rows = vision.pooling == model::Pooling::kDual ? 2.0 : 1.0;
  flops +=
      2.0 * pooled_rows * static_cast<double>(vision.num_features()) * static_cast<double>(vision.embed_dim);
  return flops;
}

namespace {

std::optional<double> median(std::vector<double> values) {
  if (values.empty()) return std::nullopt;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

json optional_json(const std::optional<double>& value) {
  return value ? json(*value) : json(nullptr);
}

}  // namespace

void read_step_metrics(const std::string& metrics_jsonl, RunCost& cost) {
  std::ifstream in(metrics_jsonl);
  std::vector<double> step_s;
  std::vector<double> studies_per_s;
  for (std::string line; std::getline(in, line);) {
    const json row = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!row.is_object() || !row.contains("step_s")) continue;
    step_s.push_back(row.at("step_s").get<double>());
    if (row.contains("studies_per_s")) studies_per_s.push_back(row.at("studies_per_s").get<double>());
  }
  if (step_s.size() > 1) step_s.erase(step_s.begin());
  if (studies_per_s.size() > 1) studies_per_s.erase(studies_per_s.begin());
  cost.step_s_median = median(step_s);
  cost.studies_per_s = median(studies_per_s);
}

json RunCost::to_json() const {
  return {{"wall_s", wall_s},
          {"step_s_median", optional_json(step_s_median)},
          {"studies_per_s", optional_json(studies_per_s)},
          {"peak_rss_bytes", peak_rss_bytes},
          {"peak_gpu_bytes", peak_gpu_bytes ? json(*peak_gpu_bytes) : json(nullptr)},
          {"tokens_per_scan", tokens_per_scan},
          {"params", params},
          {"flops_per_study", flops_per_study}};
}

}  // namespace hlip::ablate
