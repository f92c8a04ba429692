#include "hlip/eval/report.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "hlip/core/error.h"
#include "hlip/core/files.h"

namespace hlip::eval {
namespace fs = std::filesystem;
using json = nlohmann::json;

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"};

// Tick positions: 1, 2 or 5 times a power of ten, about `count` of them over [low, high].
std::vector<double> ticks(double low, double high, int count) {
  const double span = high - low;
  const double raw = span / std::max(count, 1);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * power;
    if (step >= raw) break;
  }
  std::vector<double> out;
  for (double t = std::ceil(low / step) * step; t <= high + step * 1e-9; t += step) {
    out.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return out;
}

std::string tick_label(double value) {
  return fmt::format("{:g}", value);
}

std::vector<json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  std::vector<json> lines;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    json value = json::parse(line, nullptr, false);
    if (value.is_discarded()) throw Error(fmt::format("{}:{}: not JSON", path, number));
    lines.push_back(std::move(value));
  }
  return lines;
}

// The series of `key` against "step" over the lines that have it.
ChartSeries series_of(const std::vector<json>& lines, const std::string& key, const std::string& name) {
  ChartSeries series{name, {}};
  for (const auto& line : lines) {
    if (line.contains(key) && line[key].is_number() && line.contains("step")) {
      series.points.emplace_back(line["step"].get<double>(), line[key].get<double>());
    }
  }
  return series;
}

std::string format_number(const json& value) {
  return value.is_number() ? fmt::format("{:.3f}", value.get<double>()) : "–";
}

}  // namespace

std::string svg_line_chart(const std::vector<ChartSeries>& series, const ChartOptions& options) {
  const double left = 64, right = 16, top = 36, bottom = 48;
  const double plot_w = options.width - left - right;
  const double plot_h = options.height - top - bottom;
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const auto& s : series) {
    for (const auto& [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  }
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{2}\" y=\"20\" text-anchor=\"middle\" font-size=\"14\">{3}</text>\n",
      options.width, options.height, options.width / 2, html_escape(options.title));
  if (!std::isfinite(x0)) {
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no data</text>\n</svg>\n",
                       options.width / 2, options.height / 2);
    return svg;
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  auto px = [&](double x) { return left + (x - x0) / (x1 - x0) * plot_w; };
  auto py = [&](double y) { return top + (1 - (y - y0) / (y1 - y0)) * plot_h; };
  svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n",
                     left, top, plot_w, plot_h);
  for (double t : ticks(x0, x1, 6)) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px(t), top, top + plot_h, top + plot_h + 16, tick_label(t));
  }
  for (double t : ticks(y0, y1, 5)) {
    svg += fmt::format(
        "<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{4:.1f}\" text-anchor=\"end\">{5}</text>\n",
        py(t), left, left + plot_w, left - 6, py(t) + 4, tick_label(t));
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", left + plot_w / 2,
                     options.height - 10, html_escape(options.x_label));
  svg += fmt::format(
      "<text x=\"14\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {0})\">{1}</text>\n",
      top + plot_h / 2, html_escape(options.y_label));
  for (size_t i = 0; i < series.size(); ++i) {
    const char* color = kColors[i % std::size(kColors)];
    std::string points;
    int count = 0;
    for (const auto& [x, y] : series[i].points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      points += fmt::format("{:.1f},{:.1f} ", px(x), py(y));
      ++count;
    }
    svg += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n", color,
                       points);
    if (count <= 40) {
      for (const auto& [x, y] : series[i].points) {
        if (std::isfinite(x) && std::isfinite(y)) {
          svg += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"/>\n", px(x), py(y),
                             color);
        }
      }
    }
    const double ly = top + 14 + 16 * static_cast<double>(i);
    svg += fmt::format(
        "<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"{3}\" stroke-width=\"2\"/>"
        "<text x=\"{4}\" y=\"{5:.1f}\">{6}</text>\n",
        left + plot_w - 150, ly, left + plot_w - 130, color, left + plot_w - 125, ly + 4,
        html_escape(series[i].name));
  }
  svg += "</svg>\n";
  return svg;
}

std::string write_run_report(const RunReportOptions& options) {
  const fs::path out(options.out);
  const fs::path folder = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  const std::string stem = out.stem().string();
  const auto lines = read_jsonl((fs::path(options.run_dir) / "metrics.jsonl").string());

  std::vector<ChartSeries> loss = {series_of(lines, "loss", "training loss"),
                                   series_of(lines, "val_loss", "validation loss")};
  ChartOptions loss_chart{"Contrastive loss", "step", "loss"};
  std::vector<ChartSeries> zeroshot;
  for (const auto& [key, name] : std::vector<std::pair<std::string, std::string>>{
           {"zeroshot/mean_auc", "validation mean AUC"},
           {"zeroshot/multiclass_auc", "validation multiclass AUC"},
           {"zeroshot/mean_balanced_accuracy", "validation balanced accuracy"}}) {
    auto s = series_of(lines, key, name);
    if (!s.points.empty()) zeroshot.push_back(std::move(s));
  }
  ChartOptions zeroshot_chart{"Zero-shot during training", "step", "score"};
  const std::string loss_file = stem + "-loss.svg";
  const std::string zeroshot_file = stem + "-zeroshot.svg";
  write_file_atomic((folder / loss_file).string(), svg_line_chart(loss, loss_chart));
  write_file_atomic((folder / zeroshot_file).string(), svg_line_chart(zeroshot, zeroshot_chart));

  std::string md = fmt::format("# hlip run report\n\nRun folder: `{}`\n\n", options.run_dir);
  double last_loss = std::nan("");
  int64_t last_step = 0;
  for (const auto& line : lines) {
    if (line.contains("loss") && line["loss"].is_number()) {
      last_loss = line["loss"].get<double>();
      last_step = line.value("step", int64_t{0});
    }
  }
  md += fmt::format("Last logged step {}: training loss {:.4f}.\n\n", last_step, last_loss);
  md += fmt::format("![loss]({})\n\n![zero-shot]({})\n\n", loss_file, zeroshot_file);
  if (!options.zeroshot_dir.empty()) {
    const fs::path results_path = fs::path(options.zeroshot_dir) / "results.json";
    std::ifstream in(results_path);
    if (!in) throw Error(fmt::format("{}: cannot open", results_path.string()));
    const json results = json::parse(in, nullptr, false);
    if (results.is_discarded()) throw Error(fmt::format("{}: not JSON", results_path.string()));
    md += fmt::format("## Zero-shot: {} ({} split)\n\n", results.value("task", std::string("?")),
                      results.value("split", std::string("?")));
    md +=
        "| class | n pos | n neg | AUC | 95% CI | balanced acc. | F1 (weighted) "
        "|\n|---|---|---|---|---|---|---|\n";
    // Named: items() of the temporary that value() returns would outlive it.
    const json classes = results.value("classes", json::object());
    for (const auto& [name, c] : classes.items()) {
      const json ci = c.value("auc_ci95", json::array());
      md += fmt::format(
          "| {} | {} | {} | {} | {} | {} | {} |\n", name, c.value("n_pos", json()).dump(),
          c.value("n_neg", json()).dump(), format_number(c.value("auc", json())),
          ci.size() == 2 ? fmt::format("{} – {}", format_number(ci[0]), format_number(ci[1])) : "–",
          format_number(c.value("balanced_accuracy", json())), format_number(c.value("f1_weighted", json())));
    }
    const json mean = results.value("mean", json::object());
    md += fmt::format("| **macro mean** | | | **{}** | | **{}** | **{}** |\n\n",
                      format_number(mean.value("auc", json())),
                      format_number(mean.value("balanced_accuracy", json())),
                      format_number(mean.value("f1_weighted", json())));
    md += fmt::format("Per-study scores: `{}`; every protocol choice is recorded in `{}`.\n",
                      (fs::path(options.zeroshot_dir) / "scores.csv").string(), results_path.string());
  }
  write_file_atomic(options.out, md);
  return md;
}

}  // namespace hlip::eval
