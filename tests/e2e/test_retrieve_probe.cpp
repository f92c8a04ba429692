// `hlip retrieve` and `hlip probe` on synthetic studies with the untrained tiny model (tiny_model.h). The
// synthetic manifest is re-split (study i to train / val / test by i % 3) and given labels of its own
// ("even" and "odd" alternate within each split), so the tests do not depend on the generator's draws; one
// test study has no report and no labels, another no "impression" report. Results files are checked against
// each other and recomputed here; an untrained model scores near chance, so accuracy is not tested.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_runner.h"
#include "scores_csv.h"
#include "temp_dir.h"
#include "tiny_model.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class RetrieveProbe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    temp_ = new TempDir("hlip_e2e_retrieve_probe");
    const fs::path root = temp_->path();
    const auto synth =
        run_hlip("synth --out " + (root / "data").string() + " --studies 18 --seed 5 --no-progress");
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
    const char* const splits[] = {"train", "val", "test"};
    std::ofstream manifest(root / "data" / "probe.jsonl");
    int i = 0;
    for (const auto& line : lines_of(root / "data" / "studies.jsonl")) {
      if (line.empty()) continue;
      json study = json::parse(line);
      const int position = i / 3;  // within the split
      study["split"] = splits[i % 3];
      study["labels"] = {{"even", position % 2 == 0 ? 1 : 0}, {"odd", position % 2 == 1 ? 1 : 0}};
      study["reports"] = {{"impression", study["report"][0]}};
      if (i == 14) study["reports"].erase("impression");
      if (i == 17) {  // the last test study
        study.erase("report");
        study.erase("reports");
        study["labels"] = json::object();
      }
      manifest << study.dump() << "\n";
      ++i;
    }
    manifest.close();
    ASSERT_EQ(i, 18);
    std::ofstream(root / "small.toml")
        << "base = \"mri-brain\"\nname = \"small\"\noutput_size = [8, 24, 40]\nresize_size = 40\n";
    const auto prepare = run_hlip("prepare --manifest " + (root / "data" / "probe.jsonl").string() +
                                  " --out " + (root / "cache").string() + " --preset " +
                                  (root / "small.toml").string() + " --no-progress");
    ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
    assemble_tiny_model(root / "model");
    std::ofstream(root / "parity.json") << R"({"name": "parity", "mode": "multiclass", "templates": ["{c}"],
               "classes": [{"name": "even", "prompts": ["even"]}, {"name": "odd", "prompts": ["odd"]}]})";
  }
  static void TearDownTestSuite() {
    delete temp_;
    temp_ = nullptr;
  }

  static fs::path root() { return temp_->path(); }
  static std::string base(const std::string& command) {
    return command + " --model " + (root() / "model").string() + " --data " + (root() / "cache").string() +
           " --no-progress";
  }
  // The cache's studies of `split`, in manifest order.
  static std::vector<json> studies(const std::string& split) {
    std::vector<json> out;
    for (const auto& line : lines_of(root() / "cache" / "studies.jsonl")) {
      json study = json::parse(line);
      if (study["split"] == split) out.push_back(std::move(study));
    }
    return out;
  }

  static TempDir* temp_;
};

TempDir* RetrieveProbe::temp_ = nullptr;

// Recall, mean and median rank from the per-study ranks of one direction.
void expect_direction_matches_ranks(const json& results, const std::string& direction,
                                    const std::string& key) {
  std::vector<int64_t> ranks;
  for (const auto& r : results["ranks"])
    ranks.push_back(r[key].get<int64_t>());
  const auto n = static_cast<double>(ranks.size());
  for (int k : {1, 5, 10}) {
    const double hits =
        static_cast<double>(std::count_if(ranks.begin(), ranks.end(), [k](int64_t r) { return r <= k; }));
    EXPECT_DOUBLE_EQ(results[direction]["recall"]["R@" + std::to_string(k)].get<double>(), hits / n)
        << direction;
  }
  double sum = 0;
  for (int64_t r : ranks) {
    EXPECT_GE(r, 1);
    EXPECT_LE(r, static_cast<int64_t>(ranks.size()));
    sum += static_cast<double>(r);
  }
  EXPECT_DOUBLE_EQ(results[direction]["mean_rank"].get<double>(), sum / n);
  std::sort(ranks.begin(), ranks.end());
  const double median =
      ranks.size() % 2 == 1
          ? static_cast<double>(ranks[ranks.size() / 2])
          : 0.5 * static_cast<double>(ranks[ranks.size() / 2 - 1] + ranks[ranks.size() / 2]);
  EXPECT_DOUBLE_EQ(results[direction]["median_rank"].get<double>(), median);
}

TEST_F(RetrieveProbe, RetrieveRanksEveryStudyWithAReportAndCountsTheRest) {
  const fs::path out = root() / "retrieval" / "results.json";
  const auto result = run_hlip(base("retrieve") + " --split test --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("image -> report"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("report -> image"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("skipped: 1 studies (no report)"), std::string::npos) << result.out;
  const json results = json::parse(read_file(out.string()));
  const auto test = studies("test");
  ASSERT_EQ(test.size(), 6u);
  EXPECT_EQ(results["n_studies"], 5);
  EXPECT_EQ(results["skipped"], json({{"no report", 1}}));
  EXPECT_EQ(results["failed_studies"], 0);
  EXPECT_EQ(results["split"], "test");
  EXPECT_EQ(results["protocol"]["image_embedding"], 0);  // one image row
  EXPECT_EQ(results["protocol"]["ties"], "pessimistic");
  ASSERT_EQ(results["ranks"].size(), 5u);
  for (size_t i = 0; i < 5; ++i)
    EXPECT_EQ(results["ranks"][i]["study"], test[i]["study"]);
  expect_direction_matches_ranks(results, "image_to_report", "image_to_report_rank");
  expect_direction_matches_ranks(results, "report_to_image", "report_to_image_rank");

  // The optimistic rule never ranks a match lower.
  const fs::path optimistic = root() / "retrieval" / "optimistic.json";
  ASSERT_EQ(
      run_hlip(base("retrieve") + " --split test --ties optimistic --out " + optimistic.string()).exit_code,
      0);
  const json other = json::parse(read_file(optimistic.string()));
  EXPECT_EQ(other["protocol"]["ties"], "optimistic");
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_LE(other["ranks"][i]["image_to_report_rank"], results["ranks"][i]["image_to_report_rank"]);
    EXPECT_LE(other["ranks"][i]["report_to_image_rank"], results["ranks"][i]["report_to_image_rank"]);
  }
}

TEST_F(RetrieveProbe, RetrieveWithAReportSourceSkipsStudiesWithoutIt) {
  const fs::path out = root() / "impression.json";
  const auto result =
      run_hlip(base("retrieve") + " --split test --report-source impression --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json results = json::parse(read_file(out.string()));
  // Study 14 lacks the source; study 17 has no report at all, so no source either.
  EXPECT_EQ(results["n_studies"], 4);
  EXPECT_EQ(results["skipped"], json({{"no report source \"impression\"", 2}}));
  EXPECT_EQ(results["protocol"]["report_source"], "impression");
}

TEST_F(RetrieveProbe, RetrieveBadInputGivesOneLineErrors) {
  const auto split = run_hlip(base("retrieve") + " --split nosuch");
  EXPECT_EQ(split.exit_code, 1);
  EXPECT_NE(split.err.find("no study in split \"nosuch\" (splits: test, train, val)"), std::string::npos)
      << split.err;
  EXPECT_EQ(count_lines(split.err), 1) << split.err;

  const auto source = run_hlip(base("retrieve") + " --split test --report-source findings");
  EXPECT_EQ(source.exit_code, 1);
  EXPECT_NE(
      source.err.find("none of the 6 studies of split \"test\" has a report \"findings\" (report sources: "
                      "impression)"),
      std::string::npos)
      << source.err;
  EXPECT_EQ(count_lines(source.err), 2) << source.err;  // the model's load report, then the error

  const auto row = run_hlip(base("retrieve") + " --split test --image-embedding 1");
  EXPECT_EQ(row.exit_code, 1);
  EXPECT_NE(row.err.find("row 1 requested but the model gives 1 row(s)"), std::string::npos) << row.err;

  const auto ties = run_hlip(base("retrieve") + " --ties random");
  EXPECT_EQ(ties.exit_code, 2);
}

TEST_F(RetrieveProbe, ProbeOneVsRestWritesZeroShotFilesAndIsDeterministic) {
  const fs::path out = root() / "probe-even";
  const auto result = run_hlip(base("probe") + " --labels even --bootstrap 50 --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("<- chosen"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("skipped for even: 1 studies (label missing)"), std::string::npos) << result.out;
  const json results = json::parse(read_file((out / "results.json").string()));
  EXPECT_EQ(results["split"], "test");
  EXPECT_EQ(results["n_studies"], 6);
  const json& even = results["classes"]["even"];
  EXPECT_EQ(even["n_pos"], 3);  // test positions 0, 2 and 4
  EXPECT_EQ(even["n_neg"], 2);  // positions 1 and 3 (position 5 lost its labels)
  EXPECT_EQ(even["threshold"], 0.5);
  const json& probe = results["probe"];
  EXPECT_EQ(probe["train_split"], "train");
  EXPECT_EQ(probe["val_split"], "val");
  EXPECT_EQ(probe["n_train"], 6);
  EXPECT_EQ(probe["classes"]["even"]["train_pos"], 3);
  EXPECT_EQ(probe["classes"]["even"]["train_neg"], 3);
  ASSERT_EQ(probe["l2_grid"].size(), 9u);
  bool found = false;
  double best = -1;
  for (const auto& point : probe["l2_grid"]) {
    found = found || point["l2"] == probe["chosen_l2"];
    if (!point["val_macro_auc"].is_null()) best = std::max(best, point["val_macro_auc"].get<double>());
  }
  EXPECT_TRUE(found);
  EXPECT_DOUBLE_EQ(probe["val_macro_auc"].get<double>(), best);
  const auto rows = read_scores(out / "scores.csv");
  ASSERT_EQ(rows.size(), 5u);
  for (const auto& r : rows) {
    EXPECT_GT(r.score, 0.0);
    EXPECT_LT(r.score, 1.0);
  }
  EXPECT_DOUBLE_EQ(even["auc"].get<double>(), pair_auc(rows, "even"));

  const fs::path again = root() / "probe-even-again";
  ASSERT_EQ(run_hlip(base("probe") + " --labels even --bootstrap 50 --out " + again.string()).exit_code, 0);
  EXPECT_EQ(read_file((out / "scores.csv").string()), read_file((again / "scores.csv").string()));
}

TEST_F(RetrieveProbe, ProbeMulticlassTaskFitsASoftmax) {
  const fs::path out = root() / "probe-parity";
  const auto result = run_hlip(base("probe") + " --task " + (root() / "parity.json").string() +
                               " --l2 0.001 --l2 1 --bootstrap 20 --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json results = json::parse(read_file((out / "results.json").string()));
  EXPECT_EQ(results["probe"]["l2_grid"].size(), 2u);
  EXPECT_EQ(results["multiclass"]["n"], 5);
  EXPECT_NE(results["probe"]["classifier"].get<std::string>().find("multinomial"), std::string::npos);
  const auto rows = read_scores(out / "scores.csv");
  ASSERT_EQ(rows.size(), 10u);
  std::map<std::string, double> sums;
  for (const auto& r : rows)
    sums[r.study] += r.score;
  for (const auto& [study, sum] : sums)
    EXPECT_NEAR(sum, 1.0, 1e-12) << study;
}

TEST_F(RetrieveProbe, ProbeBadInputGivesOneLineErrors) {
  const auto split =
      run_hlip(base("probe") + " --labels even --val-split nosuch --out " + (root() / "x").string());
  EXPECT_EQ(split.exit_code, 1);
  EXPECT_NE(split.err.find("no study in split \"nosuch\""), std::string::npos) << split.err;
  EXPECT_EQ(count_lines(split.err), 1) << split.err;

  const auto absent = run_hlip(base("probe") + " --labels glioma --out " + (root() / "x").string());
  EXPECT_EQ(absent.exit_code, 1);
  EXPECT_NE(absent.err.find("no class has both positive and negative studies in training split \"train\""),
            std::string::npos)
      << absent.err;
  EXPECT_EQ(count_lines(absent.err), 2) << absent.err;  // the model's load report, then the error

  const auto both =
      run_hlip(base("probe") + " --labels even --task synth-brain-5 --out " + (root() / "x").string());
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("give one of --task and --labels"), std::string::npos) << both.err;
}

}  // namespace
}  // namespace hlip::test
