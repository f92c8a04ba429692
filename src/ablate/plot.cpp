#include "hlip/ablate/plot.h"

#include <fmt/format.h>
#include <plplot.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>

#include "hlip/core/error.h"
#include "hlip/core/files.h"

namespace hlip::ablate {
namespace fs = std::filesystem;

namespace {

constexpr const char* kDevice = "pngcairo";

struct Rgb {
  int r, g, b;
};
// matplotlib's tab10, as the training report's SVG charts.
constexpr Rgb kColors[] = {{31, 119, 180},  {214, 39, 40}, {44, 160, 44},   {255, 127, 14},
                           {148, 103, 189}, {140, 86, 75}, {227, 119, 194}, {127, 127, 127}};
constexpr int kColorCount = static_cast<int>(std::size(kColors));
// cmap0 entries: 0 background, 1 axes and text, 2 grid; then a line and a band entry per colour.
constexpr int kText = 1, kGrid = 2, kFirstSeries = 3, kLegendBackground = kFirstSeries + 2 * kColorCount;
int line_color(std::size_t series) {
  return kFirstSeries + 2 * static_cast<int>(series % kColorCount);
}
int band_color(std::size_t series) {
  return line_color(series) + 1;
}

std::mutex& plplot_mutex() {
  static std::mutex mutex;
  return mutex;
}

bool has_device(const char* wanted) {
  constexpr int kMaxDevices = 128;
  const char* menus[kMaxDevices];
  const char* names[kMaxDevices];
  const char** menu_ptr = menus;
  const char** name_ptr = names;
  int count = kMaxDevices;
  plgDevs(&menu_ptr, &name_ptr, &count);
  for (int i = 0; i < count; ++i) {
    if (std::string(names[i]) == wanted) return true;
  }
  return false;
}

// Ends the stream and returns to the previous one however the drawing ends.
class Stream {
 public:
  Stream() {
    plgstrm(&previous_);
    plmkstrm(&stream_);
  }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  ~Stream() {
    if (initialised_) plend1();
    plsstrm(previous_);
  }
  void initialised() { initialised_ = true; }
  // Writes the file.
  void end() {
    if (initialised_) plend1();
    initialised_ = false;
  }

 private:
  PLINT previous_ = 0;
  PLINT stream_ = 0;
  bool initialised_ = false;
};

bool finite(double v) {
  return std::isfinite(v);
}

}  // namespace

void write_metric_plot(const fs::path& png, const std::vector<PlotSeries>& series,
                       const PlotOptions& options) {
  if (options.width < 200 || options.height < 150) {
    throw Error(fmt::format("{}: image size {}x{} is too small (at least 200x150)", png.string(),
                            options.width, options.height));
  }
  // The window: every finite point, band and final marker.
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  auto extend = [&](double x, double y) {
    if (!finite(x) || !finite(y)) return;
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
    y0 = std::min(y0, y);
    y1 = std::max(y1, y);
  };
  for (const auto& s : series) {
    for (std::size_t i = 0; i < s.steps.size(); ++i) {
      extend(s.steps[i], s.values.at(i));
      if (!s.low.empty()) extend(s.steps[i], s.low.at(i));
      if (!s.high.empty()) extend(s.steps[i], s.high.at(i));
    }
    if (s.final_step && s.final_value) {
      extend(*s.final_step, *s.final_value);
      if (s.final_low) extend(*s.final_step, *s.final_low);
      if (s.final_high) extend(*s.final_step, *s.final_high);
    }
  }
  const bool empty = !std::isfinite(x0);
  if (empty) {
    x0 = 0;
    x1 = 1;
    y0 = 0;
    y1 = 1;
  }
  if (x1 - x0 <= 0) {
    x0 -= 1;
    x1 += 1;
  }
  const double x_pad = (x1 - x0) * 0.03;
  x0 -= x_pad;
  x1 += x_pad;
  if (y1 - y0 < 1e-3) {
    y0 -= 0.01;
    y1 += 0.01;
  }
  const double y_pad = (y1 - y0) * 0.08;
  y0 -= y_pad;
  y1 += y_pad;

  const fs::path folder = png.parent_path().empty() ? fs::path(".") : png.parent_path();
  create_directories(folder.string());
  PendingFile file(png.string());

  std::lock_guard<std::mutex> lock(plplot_mutex());
  if (!has_device(kDevice)) {
    throw Error(fmt::format("{}: PLplot has no \"{}\" driver (install Debian's plplot-driver-cairo)",
                            png.string(), kDevice));
  }
  Stream stream;
  plsdev(kDevice);
  plsfnam(file.path().c_str());
  plspage(0.0, 0.0, options.width, options.height, 0, 0);
  plscmap0n(kLegendBackground + 1);
  plscolbg(255, 255, 255);
  plscol0a(kLegendBackground, 255, 255, 255, 0.85);
  plscol0(kText, 40, 40, 40);
  plscol0(kGrid, 215, 215, 215);
  for (int c = 0; c < kColorCount; ++c) {
    plscol0(kFirstSeries + 2 * c, kColors[c].r, kColors[c].g, kColors[c].b);
    plscol0a(kFirstSeries + 2 * c + 1, kColors[c].r, kColors[c].g, kColors[c].b, 0.2);
  }
  plinit();
  stream.initialised();
  pladv(0);
  // Room below the axes for the legend, above them for the title and the caption.
  plvpor(0.09, 0.97, 0.3, 0.86);
  plwind(x0, x1, y0, y1);
  plschr(0.0, 0.9);
  plcol0(kGrid);
  plwidth(0.5);
  plbox("g", 0.0, 0, "g", 0.0, 0);
  plcol0(kText);
  plwidth(1.0);
  plbox("bcnst", 0.0, 0, "bcnstv", 0.0, 0);
  pllab(options.x_label.c_str(), options.y_label.c_str(), "");
  plschr(0.0, 1.1);
  plmtex("t", 2.6, 0.5, 0.5, options.title.c_str());
  plschr(0.0, 0.75);
  if (!options.caption.empty()) plmtex("t", 1.2, 0.5, 0.5, options.caption.c_str());
  plschr(0.0, 0.9);

  if (empty) {
    plptex(0.5, 0.5, 1.0, 0.0, 0.5, "no measurements");
    stream.end();
    file.commit();
    return;
  }

  std::vector<PLINT> legend_opts, legend_line_colors, legend_line_styles, legend_symbol_colors,
      legend_symbol_numbers, legend_text_colors;
  std::vector<PLFLT> legend_line_widths, legend_symbol_scales;
  std::vector<std::string> legend_texts;
  std::vector<const char*> legend_text_ptrs, legend_symbols;
  for (std::size_t k = 0; k < series.size(); ++k) {
    const PlotSeries& s = series[k];
    std::vector<PLFLT> xs, ys, lows, highs;
    for (std::size_t i = 0; i < s.steps.size(); ++i) {
      if (!finite(s.steps[i]) || !finite(s.values[i])) continue;
      xs.push_back(s.steps[i]);
      ys.push_back(s.values[i]);
      if (!s.low.empty() && !s.high.empty() && finite(s.low[i]) && finite(s.high[i])) {
        lows.push_back(s.low[i]);
        highs.push_back(s.high[i]);
      }
    }
    const bool has_final = s.final_step && s.final_value && finite(*s.final_step) && finite(*s.final_value);
    // A series without data (a pending arm) keeps its legend entry, so the chain reads whole.
    if (lows.size() == xs.size() && xs.size() >= 2) {
      std::vector<PLFLT> px(xs), py(highs);
      for (std::size_t i = xs.size(); i-- > 0;) {
        px.push_back(xs[i]);
        py.push_back(lows[i]);
      }
      plcol0(band_color(k));
      plfill(static_cast<PLINT>(px.size()), px.data(), py.data());
    }
    plcol0(line_color(k));
    plwidth(2.0);
    if (xs.size() >= 2) plline(static_cast<PLINT>(xs.size()), xs.data(), ys.data());
    plwidth(1.0);
    if (!xs.empty()) plpoin(static_cast<PLINT>(xs.size()), xs.data(), ys.data(), 17);
    if (has_final) {
      PLFLT fx = *s.final_step, fy = *s.final_value;
      if (s.final_low && s.final_high) {
        PLFLT lo = *s.final_low, hi = *s.final_high;
        plwidth(1.5);
        plerry(1, &fx, &lo, &hi);
        plwidth(1.0);
      }
      plssym(0.0, 2.2);
      plpoin(1, &fx, &fy, 9);
      plssym(0.0, 1.0);
    }
    legend_opts.push_back(PL_LEGEND_LINE | PL_LEGEND_SYMBOL);
    legend_line_colors.push_back(line_color(k));
    legend_line_styles.push_back(1);
    legend_line_widths.push_back(2.0);
    legend_symbol_colors.push_back(line_color(k));
    legend_symbol_scales.push_back(1.0);
    legend_symbol_numbers.push_back(1);
    legend_text_colors.push_back(kText);
    legend_texts.push_back(s.label);
    legend_symbols.push_back("#(850)");
  }
  for (const auto& text : legend_texts)
    legend_text_ptrs.push_back(text.c_str());
  if (!legend_texts.empty()) {
    PLFLT legend_width = 0, legend_height = 0;
    // At most three entries a row, under the x axis's label.
    const PLINT columns = static_cast<PLINT>(std::min<std::size_t>(3, legend_texts.size()));
    const PLINT rows = (static_cast<PLINT>(legend_texts.size()) + columns - 1) / columns;
    pllegend(&legend_width, &legend_height, PL_LEGEND_BACKGROUND | PL_LEGEND_BOUNDING_BOX,
             PL_POSITION_BOTTOM | PL_POSITION_OUTSIDE, 0.0, 0.24, 0.06, kLegendBackground, kGrid, 1, rows,
             columns, static_cast<PLINT>(legend_texts.size()), legend_opts.data(), 1.0, 0.9, 2.0, 0.0,
             legend_text_colors.data(), legend_text_ptrs.data(), nullptr, nullptr, nullptr, nullptr,
             legend_line_colors.data(), legend_line_styles.data(), legend_line_widths.data(),
             legend_symbol_colors.data(), legend_symbol_scales.data(), legend_symbol_numbers.data(),
             legend_symbols.data());
  }
  stream.end();
  file.commit();
}

}  // namespace hlip::ablate
