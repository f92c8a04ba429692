// `hlip train-gen`, `hlip eval-gen` and `hlip generate` through the binary on a tiny synthetic dataset: an
// HLIP model trained for one epoch, a small decoder on its visual tokens, scored and run on a raw study.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "temp_dir.h"
#include "tiny_dataset.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class Generate : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir("hlip_e2e_generate");
    const fs::path root = root_->path();
    ASSERT_EQ(make_tiny_dataset(root, 12, 4), "");
    const auto trained = run_hlip(
        "train --model hlip-tiny --batch-size 4 --num-scans 2 --epochs 1 --warmup 1 "
        "--workers 1 --val-frequency 0 --no-progress --train-data " +
        (root / "cache").string() + " --tokenizer " + (root / "tokenizer").string() + " --logs " +
        (root / "logs").string() + " --name clip");
    ASSERT_EQ(trained.exit_code, 0) << trained.err;
  }
  static void TearDownTestSuite() { delete root_; }

  static std::string train_gen(const std::string& out, const std::string& extra = "",
                               const std::string& heads = "2") {
    const fs::path root = root_->path();
    return "train-gen --no-progress --model " + (root / "logs/clip/model").string() + " --train-data " +
           (root / "cache").string() + " --out " + (root / out).string() + " --width 32 --layers 1 --heads " +
           heads + " --epochs 3 --batch-size 4 --warmup 2 --workers 1" + extra;
  }

  static TempDir* root_;
};

TempDir* Generate::root_ = nullptr;

TEST_F(Generate, TrainScoreAndRunOnARawStudy) {
  const fs::path root = root_->path();
  auto result = run_hlip(train_gen("gen"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("trained 9 steps"), std::string::npos) << result.out;  // 3 epochs of 3 batches
  for (const char* file : {"generator_config.json", "decoder.safetensors", "metrics.jsonl"})
    EXPECT_TRUE(fs::exists(root / "gen" / file)) << file;
  const json config = json::parse(read_file((root / "gen/generator_config.json").string()));
  EXPECT_EQ(config["vision"], "frozen");
  EXPECT_EQ(config["decoder"]["visual_width"], 96);  // hlip-tiny's trunk width
  EXPECT_EQ(lines_of((root / "gen/metrics.jsonl").string()).size(), 3u);

  result = run_hlip("eval-gen --no-progress --model " + (root / "gen").string() + " --data " +
                    (root / "cache").string() + " --split all --out " + (root / "scored").string() +
                    " --max-new-tokens 20");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("finding_f1_macro"), std::string::npos) << result.out;
  const json scored = json::parse(read_file((root / "scored/results.json").string()));
  EXPECT_EQ(scored["studies"], 12);
  for (const char* side : {"generator", "baseline"}) {
    for (const char* key : {"bleu1", "bleu4"}) {
      const double value = scored[side]["bleu"][key].get<double>();
      EXPECT_GE(value, 0.0);
      EXPECT_LE(value, 1.0);
    }
    EXPECT_TRUE(scored[side].contains("finding_f1_macro"));
    EXPECT_TRUE(scored[side]["findings"].contains("glioma"));
  }
  EXPECT_FALSE(scored["baseline_report"].get<std::string>().empty());
  EXPECT_EQ(scored["decoding"]["max_new_tokens"], 20);
  const auto rows = lines_of((root / "scored/generations.csv").string());
  EXPECT_GE(rows.size(), 13u);  // a header and 12 studies (quoted fields may hold no newline)
  EXPECT_EQ(rows.front(), "study,reference,generated");

  // One raw study: the scans the synthetic manifest names, prepared with the HLIP model's preset. Greedy
  // decoding is deterministic; beam search runs too.
  const json study = json::parse(lines_of((root / "data/studies.jsonl").string()).at(0));
  std::string scans;
  for (const auto& scan : study["scans"])
    scans += " " + (root / "data" / scan["path"].get<std::string>()).string();
  const std::string command =
      "generate --model " + (root / "gen").string() + " --max-new-tokens 20 --study" + scans;
  const auto first = run_hlip(command);
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_FALSE(first.out.empty());
  EXPECT_EQ(run_hlip(command).out, first.out);
  const auto beams = run_hlip(command + " --beams 3 --json");
  ASSERT_EQ(beams.exit_code, 0) << beams.err;
  EXPECT_EQ(json::parse(beams.out)["beams"], 3);
}

TEST_F(Generate, ZeroShotVqaAnswersTheSynthesisedQuestions) {
  const fs::path root = root_->path();
  int64_t questions = 0;
  for (const auto& line : lines_of((root / "cache/studies.jsonl").string()))
    questions += static_cast<int64_t>(json::parse(line).at("qa").size());  // prepare keeps the field
  ASSERT_GT(questions, 24);                                                // at least 2 per study
  const std::string base = "vqa --no-progress --model " + (root / "logs/clip/model").string() + " --data " +
                           (root / "cache").string() + " --split all --out " + (root / "vqa").string();
  auto result = run_hlip(base);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("majority"), std::string::npos) << result.out;
  const json scored = json::parse(read_file((root / "vqa/results.json").string()));
  EXPECT_EQ(scored["questions"], questions);
  EXPECT_EQ(scored["set"], "synth-mri");
  for (const auto& [type, r] : scored["types"].items()) {
    EXPECT_GE(r["accuracy"].get<double>(), 0.0) << type;
    EXPECT_LE(r["accuracy"].get<double>(), 1.0) << type;
    EXPECT_EQ(r["majority_from"], "train") << type;
  }
  EXPECT_TRUE(scored["types"].contains("finding"));
  EXPECT_EQ(static_cast<int64_t>(lines_of((root / "vqa/answers.csv").string()).size()), questions + 1);

  std::ofstream(root / "odd.json") << R"({"types": {"side": [{"name": "left", "prompts": ["left"]}]}})";
  result = run_hlip(base + " --answers " + (root / "odd.json").string());
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("\"types\".side must list at least two answers"), std::string::npos)
      << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
}

TEST_F(Generate, GenerativeVqaLearnsAnswersAfterTheQuestion) {
  const fs::path root = root_->path();
  int64_t questions = 0, train_studies = 0, train_questions = 0;
  for (const auto& line : lines_of((root / "cache/studies.jsonl").string())) {
    const json study = json::parse(line);
    questions += static_cast<int64_t>(study.at("qa").size());
    if (study.at("split") != "train") continue;
    ++train_studies;
    train_questions += static_cast<int64_t>(study.at("qa").size());
  }
  auto result = run_hlip(train_gen("genqa", " --targets both"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  // Every training study gives its report and one example per question.
  const std::string learnt = std::to_string(train_studies + train_questions) + " examples of " +
                             std::to_string(train_studies) + " studies";
  EXPECT_NE(result.out.find(learnt), std::string::npos) << learnt << "\n" << result.out;
  const json config = json::parse(read_file((root / "genqa/generator_config.json").string()));
  EXPECT_EQ(config["targets"], "both");

  // eval-gen scores what the generator learnt: reports and answers.
  result = run_hlip("eval-gen --no-progress --model " + (root / "genqa").string() + " --data " +
                    (root / "cache").string() + " --split all --out " + (root / "scoredqa").string() +
                    " --max-new-tokens 8");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("majority"), std::string::npos) << result.out;
  json scored = json::parse(read_file((root / "scoredqa/results.json").string()));
  EXPECT_EQ(scored["studies"], 12);
  ASSERT_TRUE(scored.contains("vqa"));
  EXPECT_EQ(scored["vqa"]["questions"], questions);
  for (const auto& [type, r] : scored["vqa"]["types"].items()) {
    EXPECT_GE(r["accuracy"].get<double>(), 0.0) << type;
    EXPECT_LE(r["accuracy"].get<double>(), 1.0) << type;
    EXPECT_EQ(r["majority_from"], "train") << type;
  }
  const auto rows = lines_of((root / "scoredqa/answers.csv").string());
  ASSERT_EQ(static_cast<int64_t>(rows.size()), questions + 1);
  EXPECT_EQ(rows.front(), "study,type,question,answer,predicted");

  // Answers only; a reports-only generator asked a question says so in one line.
  result =
      run_hlip("eval-gen --no-progress --model " + (root / "genqa").string() + " --data " +
               (root / "cache").string() + " --split all --targets qa --out " + (root / "qaonly").string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  scored = json::parse(read_file((root / "qaonly/results.json").string()));
  EXPECT_FALSE(scored.contains("generator"));
  EXPECT_TRUE(scored.contains("vqa"));
  EXPECT_FALSE(fs::exists(root / "qaonly/generations.csv"));

  const json study = json::parse(lines_of((root / "data/studies.jsonl").string()).at(0));
  std::string scans;
  for (const auto& scan : study["scans"])
    scans += " " + (root / "data" / scan["path"].get<std::string>()).string();
  const std::string question = study["qa"][0]["question"].get<std::string>();
  result = run_hlip("generate --json --model " + (root / "genqa").string() + " --question \"" + question +
                    "\" --study" + scans);
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::parse(result.out)["question"], question);
  result = run_hlip(train_gen("gen_reports_only"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  result = run_hlip("generate --model " + (root / "gen_reports_only").string() + " --question \"" + question +
                    "\" --study" + scans);
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("was trained to write reports only"), std::string::npos) << result.err;
}

TEST_F(Generate, FineTunedVisionTowerTravelsWithTheGenerator) {
  const fs::path root = root_->path();
  auto result = run_hlip(train_gen("genft", " --vision finetune --vision-lr 1e-3 --num-scans 2"));
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("trained 9 steps"), std::string::npos) << result.out;  // 3 batches of 4 studies
  const json config = json::parse(read_file((root / "genft/generator_config.json").string()));
  EXPECT_EQ(config["vision"], "finetuned");
  EXPECT_EQ(config["hlip_model"], "hlip");
  EXPECT_EQ(config["training"]["num_scans"], 2);
  for (const char* file :
       {"hlip/open_clip_config.json", "hlip/model.safetensors", "hlip/tokenizer/vocab.txt"})
    EXPECT_TRUE(fs::exists(root / "genft" / file)) << file;
  EXPECT_EQ(lines_of((root / "genft/metrics.jsonl").string()).size(), 3u);
  // The copy records the preprocessing of the model it came from, and its trunk moved.
  const json source = json::parse(read_file((root / "logs/clip/model/open_clip_config.json").string()));
  const json copy = json::parse(read_file((root / "genft/hlip/open_clip_config.json").string()));
  EXPECT_EQ(copy["preprocess_cfg"]["hlip_preset"], source["preprocess_cfg"]["hlip_preset"]);
  EXPECT_NE(read_file((root / "genft/hlip/model.safetensors").string()),
            read_file((root / "logs/clip/model/model.safetensors").string()));

  result = run_hlip("eval-gen --no-progress --model " + (root / "genft").string() + " --data " +
                    (root / "cache").string() + " --split all --out " + (root / "scoredft").string() +
                    " --max-new-tokens 8");
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(json::parse(read_file((root / "scoredft/results.json").string()))["studies"], 12);
}

TEST_F(Generate, BadInputIsOneLine) {
  const fs::path root = root_->path();
  auto result = run_hlip("generate --model " + (root / "nowhere").string() + " --study x.nii.gz");
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_NE(result.err.find("nowhere/generator_config.json: no generator here"), std::string::npos)
      << result.err;
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  result = run_hlip(train_gen("odd", "", "3"));
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("--width 32 is not divisible by --heads 3"), std::string::npos) << result.err;
  result = run_hlip(train_gen("nosplit", " --train-split nowhere"));
  EXPECT_EQ(result.exit_code, 2) << result.err;
  EXPECT_NE(result.err.find("no studies of split \"nowhere\""), std::string::npos) << result.err;
}

}  // namespace
}  // namespace hlip::test
