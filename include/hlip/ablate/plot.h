#pragma once
// The ablation report's plots: a metric against training steps for each arm, a band across seeds, and the
// final (test split) value of each arm as a marker with its seed range, drawn by PLplot's cairo PNG driver.
//
//   hlip::ablate::PlotSeries cls{"cls", {50, 100}, {0.61, 0.70}, {0.60, 0.68}, {0.63, 0.72}};
//   cls.final_step = 100;
//   cls.final_value = 0.71;
//   hlip::ablate::write_metric_plot("images/1 pooling (cls -> dino.txt).png", {cls, dino}, {"Pooling", ...});
//
// PLplot keeps global state: calls are serialised, each on a stream of its own.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace hlip::ablate {

struct PlotSeries {
  std::string label;  // the legend entry
  std::vector<double> steps;
  std::vector<double> values;                   // the line: the mean over seeds at each step
  std::vector<double> low, high;                // the band (min and max over seeds); empty for none
  std::optional<double> final_step;             // where to put the final marker
  std::optional<double> final_value;            // the final metric (mean over seeds)
  std::optional<double> final_low, final_high;  // its range over seeds
};

struct PlotOptions {
  std::string title;
  std::string caption;  // a smaller line under the title
  std::string x_label = "training step";
  std::string y_label;
  int width = 800;  // pixels
  int height = 480;
};

// Writes a PNG (atomically). A series without points is only a legend entry; with none at all the image
// says so.
// Throws hlip::Error when PLplot lacks its pngcairo driver (Debian's plplot-driver-cairo).
void write_metric_plot(const std::filesystem::path& png, const std::vector<PlotSeries>& series,
                       const PlotOptions& options);

}  // namespace hlip::ablate
