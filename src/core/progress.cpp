#include "hlip/core/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace hlip {
namespace {

ProgressMode resolve_mode(ProgressMode requested, std::FILE* stream) {
  if (requested != ProgressMode::kAuto) return requested;
  if (const char* env = std::getenv("HLIP_PROGRESS")) {
    if (std::strcmp(env, "bar") == 0) return ProgressMode::kBar;
    if (std::strcmp(env, "plain") == 0) return ProgressMode::kPlain;
    if (std::strcmp(env, "off") == 0) return ProgressMode::kOff;
  }
  return isatty(fileno(stream)) ? ProgressMode::kBar : ProgressMode::kPlain;
}

// Eighths of a block, so the bar moves smoothly on a narrow terminal.
std::string bar_text(double fraction, int width) {
  static const char* const kEighths[] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
  const double cells = std::clamp(fraction, 0.0, 1.0) * width;
  const int full = static_cast<int>(cells);
  const int eighths = static_cast<int>((cells - full) * 8);
  std::string text;
  for (int i = 0; i < full; ++i)
    text += "█";
  int used = full;
  if (full < width && eighths > 0) {
    text += kEighths[eighths];
    ++used;
  }
  text.append(static_cast<size_t>(width - used), ' ');
  return text;
}

}  // namespace

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  const int64_t hours = total / 3600, minutes = (total / 60) % 60, secs = total % 60;
  return hours > 0 ? fmt::format("{}:{:02}:{:02}", hours, minutes, secs)
                   : fmt::format("{:02}:{:02}", minutes, secs);
}

std::string format_progress_line(const std::string& label, int64_t done, int64_t total,
                                 double elapsed_seconds, const std::string& unit, const std::string& postfix,
                                 int bar_width, bool bar) {
  const double rate = elapsed_seconds > 0 ? static_cast<double>(done) / elapsed_seconds : 0.0;
  std::string line = label;
  if (total > 0) {
    const double fraction = static_cast<double>(done) / static_cast<double>(total);
    line += fmt::format(" {:3.0f}%", 100.0 * std::min(fraction, 1.0));
    if (bar) line += " |" + bar_text(fraction, bar_width) + "|";
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1.0;
    line +=
        fmt::format(" {}/{} [{}<{}, ", done, total, format_duration(elapsed_seconds), format_duration(eta));
  } else {
    line += fmt::format(" {} [{}, ", done, format_duration(elapsed_seconds));
  }
  line += rate >= 1.0 || rate == 0.0 ? fmt::format("{:.1f} {}/s]", rate, unit)
                                     : fmt::format("{:.1f} s/{}]", 1.0 / rate, unit);
  if (!postfix.empty()) line += " " + postfix;
  return line;
}

Progress::Progress(std::string label, int64_t total, std::string unit, ProgressOptions options)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      options_(options),
      mode_(resolve_mode(options.mode, options.stream)),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  finish();
}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t n) {
  done_ += n;
  draw(false);
}

void Progress::set_postfix(std::string postfix) {
  postfix_ = std::move(postfix);
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  if (mode_ == ProgressMode::kOff) return;
  const auto now = std::chrono::steady_clock::now();
  const double since_draw = std::chrono::duration<double>(now - last_draw_).count();
  if (mode_ == ProgressMode::kBar) {
    if (!final && since_draw < options_.bar_refresh_seconds) return;
    const std::string line =
        format_progress_line(label_, done_, total_, elapsed(), unit_, postfix_, options_.bar_width, true);
    fmt::print(options_.stream, "\r{}\x1b[K{}", line, final ? "\n" : "");
  } else {
    const int64_t step =
        total_ > 0 ? std::max<int64_t>(1, std::llround(total_ * options_.plain_every_fraction)) : 0;
    const bool crossed_step = step > 0 && done_ / step > last_plain_done_ / step;
    if (!final && !crossed_step && since_draw < options_.plain_every_seconds) return;
    if (final && done_ == last_plain_done_ && done_ > 0) return;  // the last step line already said it all
    fmt::print(
        options_.stream, "{}\n",
        format_progress_line(label_, done_, total_, elapsed(), unit_, postfix_, options_.bar_width, false));
    last_plain_done_ = done_;
  }
  std::fflush(options_.stream);
  last_draw_ = now;
}

}  // namespace hlip
