// The ablation report on a sweep folder built here (sweep.json and run folders as `hlip ablate` writes
// them): every file, the summary's numbers against the arms' results.json, valid PNGs with the seed page's
// names, failed and pending arms listed, errors naming sweep.json's field, and report.html rendered by
// headless Chromium with every image decoded and every table present.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/ablate/plot.h"
#include "hlip/ablate/report.h"
#include "hlip/core/error.h"
#include "hlip/eval/metrics.h"
#include "temp_dir.h"

namespace hlip::ablate {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using test::error_message;
using test::TempDir;

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

// Width and height from a PNG's IHDR; {0, 0} when the signature or the IHDR chunk is wrong.
std::pair<int, int> png_size(const fs::path& path) {
  const std::string bytes = read_text(path);
  const std::string signature = "\x89PNG\r\n\x1a\n";
  if (bytes.size() < 33 || bytes.compare(0, 8, signature) != 0 || bytes.compare(12, 4, "IHDR") != 0)
    return {0, 0};
  auto be32 = [&](std::size_t at) {
    int value = 0;
    for (std::size_t i = 0; i < 4; ++i)
      value = (value << 8) | static_cast<unsigned char>(bytes[at + i]);
    return value;
  };
  return {be32(16), be32(20)};
}

// One seed run of an arm: scores of 2 classes on 48 studies with the given signal, results.json with their
// macro AUC (computed as zero-shot computes it), a training curve rising to it, cost.json and DONE.
double write_run(const fs::path& folder, double signal, unsigned seed, double step_s) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> noise(0.0, 1.0);
  std::string csv = "study,class,score,label\n";
  std::vector<std::vector<int>> labels(2);
  std::vector<std::vector<double>> scores(2);
  for (int s = 0; s < 48; ++s) {
    for (int c = 0; c < 2; ++c) {
      const int label = (s + c) % 3 == 0 ? 1 : 0;
      // Same studies and labels in every run; the noise differs by run.
      const double score = signal * label + noise(rng);
      labels[c].push_back(label);
      scores[c].push_back(score);
      csv += fmt::format("study-{:02d},{},{:.17g},{}\n", s, c == 0 ? "glioma" : "stroke", score, label);
    }
  }
  write_text(folder / "zeroshot" / "scores.csv", csv);
  const double glioma = *eval::roc_auc(labels[0], scores[0]).value;
  const double stroke = *eval::roc_auc(labels[1], scores[1]).value;
  const double macro = (glioma + stroke) / 2.0;
  const json results = {{"task", "synth-brain-5"},
                        {"split", "test"},
                        {"n_studies", 48},
                        {"classes", {{"glioma", {{"auc", glioma}}}, {"stroke", {{"auc", stroke}}}}},
                        {"mean", {{"auc", macro}, {"n_classes", 2}}}};
  write_text(folder / "zeroshot" / "results.json", results.dump(2));
  std::string metrics;
  for (int epoch = 1; epoch <= 4; ++epoch) {
    metrics += json({{"step", epoch * 25 - 10}, {"epoch", epoch - 1}, {"loss", 3.0 / epoch}}).dump() + "\n";
    metrics +=
        json({{"step", epoch * 25}, {"epoch", epoch}, {"zeroshot/mean_auc", 0.5 + (macro - 0.5) * epoch / 4}})
            .dump() +
        "\n";
  }
  write_text(folder / "train" / "metrics.jsonl", metrics);
  write_text(folder / "cost.json", json({{"wall_s", 100.0},
                                         {"step_s_median", step_s},
                                         {"studies_per_s", 8.0 / step_s},
                                         {"peak_rss_bytes", 1 << 30},
                                         {"peak_gpu_bytes", nullptr},
                                         {"tokens_per_scan", 64},
                                         {"params", 1000000},
                                         {"flops_per_study", 2.5e9}})
                                       .dump());
  write_text(folder / "DONE", "");
  return macro;
}

// A sweep: pooling cls -> dino.txt (2 seeds; dino.txt much better), patch dropout 0.25 -> 0.50 -> 0.75 (0.50
// failed after logging a curve), seqposemb w -> w/o (w/o pending; cls is shared with "w").
struct Fixture {
  TempDir dir{"hlip_ablate_report"};
  std::map<std::string, std::map<std::string, double>> metric;  // arm -> seed -> macro AUC

  Fixture() {
    const fs::path root = dir.path();
    json arms = json::object();
    auto done_arm = [&](const std::string& id, double signal, unsigned base_seed, int seeds, double step_s,
                        json changes) {
      json runs = json::object();
      for (int s = 0; s < seeds; ++s) {
        const std::string relative = fmt::format("arms/{}/seed-{}", id, s);
        metric[id][std::to_string(s)] = write_run(root / relative, signal, base_seed + s, step_s);
        runs[std::to_string(s)] = relative;
      }
      arms[id] = {{"changes", changes}, {"status", "done"}, {"error", nullptr}, {"runs", runs}};
    };
    done_arm("cls", 0.3, 10, 2, 0.50, json::object());
    done_arm("dino", 3.0, 20, 2, 0.52, {{"model.vision_cfg.pool", "dino.txt"}});
    done_arm("drop75", 0.35, 30, 1, 0.40, {{"model.vision_cfg.patch_dropout", 0.75}});
    done_arm("drop25", 0.3, 40, 1, 0.60, {{"model.vision_cfg.patch_dropout", 0.25}});
    // Failed after its first epoch: a curve, no results.
    write_text(root / "arms/drop50/seed-0/train/metrics.jsonl",
               json({{"step", 25}, {"epoch", 1}, {"zeroshot/mean_auc", 0.55}}).dump() + "\n");
    arms["drop50"] = {{"changes", {{"model.vision_cfg.patch_dropout", 0.5}}},
                      {"status", "failed"},
                      {"error", "hlip train exited with status 1: out of memory"},
                      {"runs", {{"0", "arms/drop50/seed-0"}}}};
    arms["noseq"] = {{"changes", {{"model.vision_cfg.seq_pos_embed", false}}},
                     {"status", "pending"},
                     {"error", nullptr},
                     {"runs", json::object()}};
    const json sweep = {
        {"spec", "configs/ablations/hlip-seed.toml"},
        {"profile", "quick"},
        {"task", "synth-brain-5"},
        {"split", "test"},
        {"metric", "macro_auc"},
        {"higher_is_better", true},
        {"seeds", {0, 1}},
        {"ablations",
         {{{"index", 1},
           {"name", "pooling"},
           {"title", "Pooling"},
           {"note", "DINO-style pooling of the study tokens."},
           {"arms", {{{"label", "cls"}, {"arm", "cls"}}, {{"label", "dino.txt"}, {"arm", "dino"}}}}},
          {{"index", 2},
           {"name", "patch dropout"},
           {"title", "Patch dropout"},
           {"note", ""},
           {"arms",
            {{{"label", "0.25"}, {"arm", "drop25"}},
             {{"label", "0.50"}, {"arm", "drop50"}},
             {{"label", "0.75"}, {"arm", "drop75"}}}}},
          {{"index", 3},
           {"name", "seqposemb"},
           {"title", "Sequence embedding"},
           {"arms", {{{"label", "w"}, {"arm", "cls"}}, {{"label", "w/o"}, {"arm", "noseq"}}}}}}},
        {"arms", arms}};
    write_text(root / "sweep.json", sweep.dump(2));
  }
};

ReportOptions fast_options() {
  ReportOptions options;
  options.bootstrap_resamples = 300;
  options.image_width = 640;
  options.image_height = 400;
  return options;
}

const std::vector<std::string> kImages = {"1 pooling (cls -> dino.txt).png",
                                          "2 patch dropout (0.25 -> 0.50 -> 0.75).png",
                                          "3 seqposemb (w -> w:o).png"};

TEST(AblateReport, WritesEveryFileWithTheSeedPagesImageNames) {
  Fixture fixture;
  const fs::path root = fixture.dir.path();
  const ReportFiles files = write_report(root, fast_options());
  // To look at what the test wrote: HLIP_KEEP_ABLATE_REPORT=folder keeps a copy.
  if (const char* keep = std::getenv("HLIP_KEEP_ABLATE_REPORT")) {
    fs::remove_all(keep);
    fs::copy(root, keep, fs::copy_options::recursive);
  }
  EXPECT_EQ(files.markdown, root / "report.md");
  EXPECT_TRUE(fs::exists(root / "report.md"));
  EXPECT_TRUE(fs::exists(root / "report.html"));
  EXPECT_TRUE(fs::exists(root / "summary.json"));
  ASSERT_EQ(files.images.size(), kImages.size());
  for (std::size_t i = 0; i < kImages.size(); ++i) {
    EXPECT_EQ(files.images[i], root / "images" / kImages[i]);
    EXPECT_EQ(png_size(root / "images" / kImages[i]), std::make_pair(640, 400)) << kImages[i];
  }
  const std::string md = read_text(root / "report.md");
  // The seed page's structure: setup, one section per ablation with its plot and summary, failures, notes.
  std::vector<std::string> headings = {
      "# HLIP Ablation Study",    "## 1. Experimental setup", "## 2. Pooling", "## 3. Patch dropout",
      "## 4. Sequence embedding", "## 5. Failed experiments", "## 6. Notes"};
  std::size_t at = 0;
  for (const auto& heading : headings) {
    const std::size_t found = md.find(heading + "\n", at);
    ASSERT_NE(found, std::string::npos) << heading << "\n" << md;
    at = found;
  }
  EXPECT_NE(md.find("![Pooling](images/1%20pooling%20%28cls%20-%3E%20dino.txt%29.png)"), std::string::npos)
      << md;
  EXPECT_NE(md.find("Note: DINO-style pooling of the study tokens."), std::string::npos);
}

TEST(AblateReport, SummaryNumbersAreTheArmsOwnResults) {
  Fixture fixture;
  const fs::path root = fixture.dir.path();
  write_report(root, fast_options());
  const json summary = json::parse(read_text(root / "summary.json"));
  for (const auto& [arm, seeds] : fixture.metric) {
    for (const auto& [seed, value] : seeds) {
      const json results =
          json::parse(read_text(root / "arms" / arm / ("seed-" + seed) / "zeroshot" / "results.json"));
      EXPECT_EQ(summary["arms"][arm]["runs"][seed]["metric"].get<double>(),
                results["mean"]["auc"].get<double>())
          << arm << " seed " << seed;
      EXPECT_EQ(results["mean"]["auc"].get<double>(), value);
    }
  }
  const json& pooling = summary["ablations"][0]["steps"][0];
  const double cls = (fixture.metric["cls"]["0"] + fixture.metric["cls"]["1"]) / 2;
  const double dino = (fixture.metric["dino"]["0"] + fixture.metric["dino"]["1"]) / 2;
  EXPECT_EQ(pooling["from"], "cls");
  EXPECT_EQ(pooling["to"], "dino.txt");
  EXPECT_EQ(pooling["metric_from"].get<double>(), cls);
  EXPECT_EQ(pooling["metric_to"].get<double>(), dino);
  EXPECT_EQ(pooling["difference"].get<double>(), dino - cls);
  EXPECT_NEAR(pooling["difference_from_scores"].get<double>(), dino - cls, 1e-12);
  EXPECT_EQ(pooling["n_studies"], 48);
  EXPECT_EQ(pooling["resamples_used"].get<int>() + pooling["resamples_skipped"].get<int>(), 300);
  const double lower = pooling["ci"][0], upper = pooling["ci"][1];
  EXPECT_LT(lower, dino - cls);
  EXPECT_GT(upper, dino - cls);
  EXPECT_GT(lower, 0.0);  // signal 3.0 against 0.3
  EXPECT_EQ(pooling["verdict"], "better");
  EXPECT_EQ(pooling["seed_differences"].size(), 2u);
  EXPECT_NEAR(pooling["cost"]["step_s_median"]["ratio"].get<double>(), 0.52 / 0.50, 1e-12);
  EXPECT_EQ(pooling["cost"]["peak_rss_bytes"]["ratio"].get<double>(), 1.0);
  EXPECT_NE(summary["ablations"][0]["steps"][0]["summary"].get<std::string>().find("4% slower per step"),
            std::string::npos)
      << pooling["summary"];
  EXPECT_EQ(summary["arms"]["cls"]["metric"]["n"], 2);
  EXPECT_NEAR(summary["arms"]["cls"]["metric"]["sd"].get<double>(),
              std::abs(fixture.metric["cls"]["0"] - fixture.metric["cls"]["1"]) / std::sqrt(2.0), 1e-12);
  // The written summary quotes the same numbers.
  const std::string md = read_text(root / "report.md");
  EXPECT_NE(md.find(fmt::format("macro AUC {:.3f} vs {:.3f}", dino, cls)), std::string::npos) << md;
}

TEST(AblateReport, FailedAndPendingArmsAreListedNotFatal) {
  Fixture fixture;
  const fs::path root = fixture.dir.path();
  write_report(root, fast_options());
  const json summary = json::parse(read_text(root / "summary.json"));
  std::set<std::string> failed;
  for (const auto& entry : summary["failed"])
    failed.insert(entry["arm"].get<std::string>());
  EXPECT_EQ(failed, (std::set<std::string>{"drop50", "noseq"}));
  const json& dropout = summary["ablations"][1]["steps"];
  ASSERT_EQ(dropout.size(), 2u);
  EXPECT_EQ(dropout[0]["verdict"], "not compared");
  EXPECT_EQ(dropout[0]["verdict_reason"], "0.50 failed");
  EXPECT_EQ(dropout[1]["verdict"], "not compared");
  EXPECT_EQ(summary["ablations"][2]["steps"][0]["verdict_reason"], "w/o pending");
  const std::string md = read_text(root / "report.md");
  const std::string failures = md.substr(md.find("## 5. Failed experiments"));
  EXPECT_NE(failures.find(
                "| drop50 | patch dropout: 0.50 | failed | hlip train exited with status 1: out of memory |"),
            std::string::npos)
      << failures;
  EXPECT_NE(failures.find("| noseq | seqposemb: w/o | pending | not run yet |"), std::string::npos)
      << failures;
}

TEST(AblateReport, HtmlIsSelfContained) {
  Fixture fixture;
  const fs::path root = fixture.dir.path();
  write_report(root, fast_options());
  const std::string html = read_text(root / "report.html");
  std::size_t images = 0;
  for (std::size_t at = 0; (at = html.find("<img src=\"data:image/png;base64,", at)) != std::string::npos;
       ++at)
    ++images;
  EXPECT_EQ(images, kImages.size());
  EXPECT_EQ(html.find("src=\"images/"), std::string::npos);
  EXPECT_EQ(html.find("<script"), std::string::npos);
}

TEST(AblateReport, ThreeArmChainComparesEachStep) {
  TempDir dir;
  json arms = json::object();
  const std::vector<std::pair<std::string, double>> chain = {{"0.25", 0.3}, {"0.50", 0.35}, {"0.75", 3.0}};
  json chain_json = json::array();
  std::vector<double> metric;
  for (std::size_t i = 0; i < chain.size(); ++i) {
    const std::string id = fmt::format("arm{}", i);
    metric.push_back(write_run(dir.path() / id, chain[i].second, 7, 0.5));
    arms[id] = {{"status", "done"}, {"runs", {{"0", id}}}};
    chain_json.push_back({{"label", chain[i].first}, {"arm", id}});
  }
  write_text(dir.path() / "sweep.json",
             json({{"metric", "macro_auc"},
                   {"ablations", {{{"index", 4}, {"name", "mri patch dropout"}, {"arms", chain_json}}}},
                   {"arms", arms}})
                 .dump());
  const ReportFiles files = write_report(dir.path(), fast_options());
  ASSERT_EQ(files.images.size(), 1u);
  EXPECT_EQ(files.images[0].filename(), "4 mri patch dropout (0.25 -> 0.50 -> 0.75).png");
  const json summary = json::parse(read_text(dir.path() / "summary.json"));
  const json& steps = summary["ablations"][0]["steps"];
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0]["from"], "0.25");
  EXPECT_EQ(steps[0]["to"], "0.50");
  EXPECT_EQ(steps[0]["difference"].get<double>(), metric[1] - metric[0]);
  EXPECT_EQ(steps[1]["difference"].get<double>(), metric[2] - metric[1]);
  EXPECT_EQ(steps[1]["verdict"], "better");
  const std::string md = read_text(dir.path() / "report.md");
  EXPECT_NE(md.find("- (a) 0.25 \u2192 0.50: macro AUC"), std::string::npos) << md;
  EXPECT_NE(md.find("- (b) 0.50 \u2192 0.75: macro AUC"), std::string::npos) << md;
  EXPECT_NE(md.find("None: every arm finished with readable results."), std::string::npos);
}

TEST(AblateReport, MalformedSweepNamesTheField) {
  TempDir dir;
  write_text(dir.path() / "sweep.json", R"({"metric": "macro_auc", "ablations": [], "arms": {"x": {}}})");
  EXPECT_NE(
      error_message([&] { write_report(dir.path()); }).find("sweep.json: field \"arms.x.status\": missing"),
      std::string::npos);
  write_text(dir.path() / "sweep.json", R"({"metric": "macro_auc", "arms": {},
      "ablations": [{"name": "a", "arms": [{"label": "x", "arm": "nope"}]}]})");
  EXPECT_NE(error_message([&] {
              write_report(dir.path());
            }).find("field \"ablations[0].arms[0].arm\": arm \"nope\" is not in \"arms\""),
            std::string::npos);
  EXPECT_NE(error_message([&] { write_report(dir.path() / "missing"); }).find("sweep.json: cannot open"),
            std::string::npos);
  ReportOptions bad;
  bad.confidence = 95;
  EXPECT_NE(
      error_message([&] { write_report(dir.path(), bad); }).find("confidence 95 is not between 0 and 1"),
      std::string::npos);
}

TEST(AblateReport, PlotWithoutDataSaysSo) {
  TempDir dir;
  PlotOptions options;
  options.title = "nothing";
  options.width = 320;
  options.height = 200;
  write_metric_plot(dir.path() / "empty.png", {}, options);
  EXPECT_EQ(png_size(dir.path() / "empty.png"), std::make_pair(320, 200));
}

// Runs `command` and returns its standard output.
std::string run_command(const std::string& command) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (!pipe) return out;
  std::array<char, 4096> buffer{};
  std::size_t n = 0;
  while ((n = std::fread(buffer.data(), 1, buffer.size(), pipe)) > 0)
    out.append(buffer.data(), n);
  ::pclose(pipe);
  return out;
}

TEST(AblateReport, HtmlRendersInHeadlessChromium) {
  const fs::path chromium = "/usr/bin/chromium";
  if (!fs::exists(chromium))
    GTEST_SKIP() << "/usr/bin/chromium is missing (scripts/install-deps installs it)";
  Fixture fixture;
  const fs::path root = fixture.dir.path();
  write_report(root, fast_options());
  // A copy of the page with a script that, once everything loaded, records each image's decoded size and
  // the number of tables in the DOM that --dump-dom prints; the report itself carries no script.
  std::string html = read_text(root / "report.html");
  const std::string probe =
      "<script>window.addEventListener('load', () => { const out = document.createElement('pre'); "
      "out.id = 'hlip-check'; out.textContent = JSON.stringify({images: Array.from(document.images).map("
      "i => [i.complete, i.naturalWidth, i.naturalHeight]), tables: "
      "document.querySelectorAll('table').length, "
      "rows: document.querySelectorAll('tr').length}); document.body.appendChild(out); });</script>";
  html.insert(html.rfind("</body>"), probe);
  write_text(root / "check.html", html);
  const std::string dom = run_command(fmt::format(
      "timeout 120 '{}' --headless --disable-gpu --no-sandbox --disable-dev-shm-usage --no-first-run "
      "--user-data-dir='{}' --virtual-time-budget=10000 --dump-dom 'file://{}' 2>/dev/null",
      chromium.string(), (root / "chromium-profile").string(), (root / "check.html").string()));
  std::smatch match;
  ASSERT_TRUE(std::regex_search(dom, match, std::regex("<pre id=\"hlip-check\">([^<]*)</pre>")))
      << "no check output in the DOM Chromium printed (" << dom.size() << " bytes):\n"
      << dom.substr(0, 2000);
  const json check = json::parse(match[1].str());
  ASSERT_EQ(check["images"].size(), kImages.size()) << check;
  for (const auto& image : check["images"]) {
    EXPECT_TRUE(image[0].get<bool>()) << check;
    EXPECT_EQ(image[1], 640) << check;
    EXPECT_EQ(image[2], 400) << check;
  }
  // The summary table, one arm table per ablation, the failed-experiments table.
  EXPECT_EQ(check["tables"], 1 + 3 + 1) << check;
  const std::string report = read_text(root / "report.html");
  std::size_t rows = 0;
  for (std::size_t at = 0; (at = report.find("<tr>", at)) != std::string::npos; ++at)
    ++rows;
  EXPECT_EQ(check["rows"].get<std::size_t>(), rows);
}

}  // namespace
}  // namespace hlip::ablate
