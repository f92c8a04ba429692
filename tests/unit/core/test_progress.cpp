#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "hlip/core/progress.h"

namespace hlip {
namespace {

std::string read_all(std::FILE* file) {
  std::rewind(file);
  std::string text;
  char buffer[4096];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    text.append(buffer, n);
  return text;
}

int count_lines(const std::string& text) {
  int lines = 0;
  for (char c : text)
    lines += c == '\n';
  return lines;
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(75.4), "01:15");
  EXPECT_EQ(format_duration(3723), "1:02:03");
  EXPECT_EQ(format_duration(-1), "--:--");
}

TEST(Progress, LineHasPercentCountsRateAndEta) {
  const auto line = format_progress_line("prepare", 450, 1000, 12.4, "studies", "loss 2.3", 10, false);
  EXPECT_EQ(line, "prepare  45% 450/1000 [00:12<00:15, 36.3 studies/s] loss 2.3");
}

TEST(Progress, BarLineHasABarOfTheRequestedWidth) {
  const auto line = format_progress_line("train", 5, 10, 1.0, "steps", "", 4, true);
  EXPECT_EQ(line, "train  50% |██  | 5/10 [00:01<00:01, 5.0 steps/s]");
}

TEST(Progress, SlowRatesAreShownAsSecondsPerItem) {
  const auto line = format_progress_line("ablate", 1, 0, 40.0, "arms", "", 10, false);
  EXPECT_EQ(line, "ablate 1 [00:40, 40.0 s/arms]");
}

TEST(Progress, PlainModePrintsAtEveryTenthAndNeverRepeatsTheLastLine) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  ProgressOptions options;
  options.mode = ProgressMode::kPlain;
  options.stream = file;
  {
    Progress progress("work", 100, "it", options);
    for (int i = 0; i < 100; ++i)
      progress.advance();
  }
  const auto text = read_all(file);
  std::fclose(file);
  EXPECT_EQ(count_lines(text), 10) << text;
  EXPECT_NE(text.find("100/100"), std::string::npos) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
}

TEST(Progress, BarModeRedrawsOneLineAndEndsItOnFinish) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  ProgressOptions options;
  options.mode = ProgressMode::kBar;
  options.stream = file;
  options.bar_refresh_seconds = 0;
  Progress progress("work", 3, "it", options);
  for (int i = 0; i < 3; ++i)
    progress.advance();
  progress.finish();
  progress.finish();
  const auto text = read_all(file);
  std::fclose(file);
  EXPECT_EQ(count_lines(text), 1) << text;
  EXPECT_NE(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("3/3"), std::string::npos);
}

TEST(Progress, OffModePrintsNothing) {
  std::FILE* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  ProgressOptions options;
  options.mode = ProgressMode::kOff;
  options.stream = file;
  {
    Progress progress("work", 5, "it", options);
    progress.advance(5);
  }
  EXPECT_TRUE(read_all(file).empty());
  std::fclose(file);
}

}  // namespace
}  // namespace hlip
