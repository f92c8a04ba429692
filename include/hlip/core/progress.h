#pragma once
// Progress of long work: a bar with rate and ETA on a terminal, plain lines otherwise (logs, CI).
//
//   hlip::Progress progress("prepare", studies.size(), "studies");
//   for (const auto& study : studies) { prepare(study); progress.advance(); }
//   progress.finish();                                   // also done by the destructor
//
// With ProgressMode::kAuto, HLIP_PROGRESS=bar|plain|off overrides the automatic choice (a bar when the
// stream is a terminal, plain lines otherwise).

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace hlip {

enum class ProgressMode { kAuto, kBar, kPlain, kOff };

struct ProgressOptions {
  ProgressMode mode = ProgressMode::kAuto;
  std::FILE* stream = stderr;
  double bar_refresh_seconds = 0.1;   // terminal redraws at most this often
  double plain_every_seconds = 30.0;  // plain mode: a line at least this often...
  double plain_every_fraction = 0.1;  // ...and at every tenth of the total
  int bar_width = 30;
};

// "1:02:03" or "02:03"; "--:--" for a negative or non-finite number of seconds.
std::string format_duration(double seconds);

// The text of one progress line, e.g. "prepare  45% |█████▌    | 450/1000 [00:12<00:15, 36.2 studies/s]
// loss 2.3". total <= 0 means unknown: no percentage, bar or ETA.
std::string format_progress_line(const std::string& label, int64_t done, int64_t total,
                                 double elapsed_seconds, const std::string& unit, const std::string& postfix,
                                 int bar_width, bool bar);

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it", ProgressOptions options = {});
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  ~Progress();

  void advance(int64_t n = 1);
  void set_postfix(std::string postfix);  // shown after the rate, e.g. "loss 2.31"
  void finish();

  int64_t done() const { return done_; }
  ProgressMode mode() const { return mode_; }

 private:
  void draw(bool final);
  double elapsed() const;

  std::string label_;
  int64_t total_;
  std::string unit_;
  ProgressOptions options_;
  ProgressMode mode_;
  std::string postfix_;
  int64_t done_ = 0;
  int64_t last_plain_done_ = 0;
  bool finished_ = false;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace hlip
