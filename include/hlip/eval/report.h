#pragma once
// Reports a person reads: SVG line charts drawn from a run's metrics.jsonl, and a Markdown page that puts
// the training curves next to a zero-shot results table.
//
//   hlip::eval::RunReportOptions options;
//   options.run_dir = "runs/demo/train";           // metrics.jsonl, params.toml
//   options.zeroshot_dir = "runs/demo/zeroshot";   // results.json
//   options.out = "runs/demo/report.md";           // and report-loss.svg, report-zeroshot.svg beside it
//   hlip::eval::write_run_report(options);

#include <string>
#include <utility>
#include <vector>

namespace hlip::eval {

// Text for HTML or SVG: <, >, & and " as entities.
std::string html_escape(const std::string& text);

struct ChartSeries {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), in x order
};

struct ChartOptions {
  std::string title;
  std::string x_label = "step";
  std::string y_label;
  int width = 640;
  int height = 360;
};

// A self-contained SVG line chart: axes with rounded ticks, one coloured polyline (and point markers when
// sparse) per series, a legend. Non-finite points are left out; an empty chart says "no data".
std::string svg_line_chart(const std::vector<ChartSeries>& series, const ChartOptions& options);

struct RunReportOptions {
  std::string run_dir;       // a `hlip train` run folder
  std::string zeroshot_dir;  // a `hlip zeroshot` output folder (results.json); optional
  std::string out;           // the Markdown file; the charts are written beside it
};

// Writes the report and its charts (atomically) and returns the Markdown text. Errors name the file.
std::string write_run_report(const RunReportOptions& options);

}  // namespace hlip::eval
