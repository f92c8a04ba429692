// `hlip zeroshot` and `hlip embed` on synthetic studies with an untrained tiny model (the checked-in
// tiny-cls-scanstudy reference weights, 8×24×40 input): results.json and scores.csv agree (AUC recomputed
// here from scores.csv), skips are counted, one raw study gets a ranked table, embeddings are written with
// their study ids, and bad input gives one-line errors. An untrained model scores at chance: these tests
// check the plumbing, not accuracy.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "cli_runner.h"
#include "safetensors_file.h"
#include "scores_csv.h"
#include "temp_dir.h"
#include "tiny_model.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void assemble_model(const fs::path& folder) {
  assemble_tiny_model(folder);
}

// Shared by every test of the suite: one synthetic dataset, its cache and the model folder.
class ZeroShot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    temp_ = new TempDir("hlip_e2e_zeroshot");
    const fs::path root = temp_->path();
    const auto synth = run_hlip("synth --out " + (root / "data").string() +
                                " --studies 16 --seed 3 --splits 0.25,0,0.75 --no-progress");
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
    std::ofstream(root / "small.toml")
        << "base = \"mri-brain\"\nname = \"small\"\noutput_size = [8, 24, 40]\n"
           "resize_size = 40\n";
    const auto prepare = run_hlip("prepare --manifest " + (root / "data" / "studies.jsonl").string() +
                                  " --out " + (root / "cache").string() + " --preset " +
                                  (root / "small.toml").string() + " --no-progress");
    ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
    assemble_model(root / "model");
  }
  static void TearDownTestSuite() {
    delete temp_;
    temp_ = nullptr;
  }

  static fs::path root() { return temp_->path(); }
  static std::string model() { return (root() / "model").string(); }
  static std::string cache() { return (root() / "cache").string(); }

  // The test split's studies, in manifest order, with their labels.
  static std::vector<json> test_studies() {
    std::vector<json> out;
    for (const auto& line : lines_of(root() / "cache" / "studies.jsonl")) {
      json study = json::parse(line);
      if (study["split"] == "test") out.push_back(std::move(study));
    }
    return out;
  }

  static TempDir* temp_;
};

TempDir* ZeroShot::temp_ = nullptr;

void expect_auc_matches_scores(const json& results, const std::vector<CsvRow>& rows) {
  for (const auto& [name, entry] : results["classes"].items()) {
    int n_pos = 0, n_neg = 0;
    for (const auto& r : rows) {
      if (r.cls == name) ++(r.label == 1 ? n_pos : n_neg);
    }
    EXPECT_EQ(entry["n_pos"], n_pos) << name;
    EXPECT_EQ(entry["n_neg"], n_neg) << name;
    if (entry["auc"].is_null()) {
      EXPECT_TRUE(n_pos == 0 || n_neg == 0) << name;
      continue;
    }
    EXPECT_DOUBLE_EQ(entry["auc"].get<double>(), pair_auc(rows, name)) << name;
    EXPECT_GE(entry["auc"].get<double>(), entry["auc_ci95"][0].get<double>() - 1e-12) << name;
    EXPECT_LE(entry["auc"].get<double>(), entry["auc_ci95"][1].get<double>() + 1e-12) << name;
  }
}

TEST_F(ZeroShot, MulticlassSplitWritesResultsThatScoresReproduce) {
  const fs::path out = root() / "out-brain5";
  const auto result =
      run_hlip("zeroshot --model " + model() + " --data " + cache() +
               " --split test --task synth-brain-5 --bootstrap 200 --no-progress --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("task synth-brain-5 (multiclass)"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("multiclass ("), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("glioma"), std::string::npos) << result.out;

  const json results = json::parse(read_file((out / "results.json").string()));
  const auto studies = test_studies();
  EXPECT_EQ(results["task"], "synth-brain-5");
  EXPECT_EQ(results["split"], "test");
  EXPECT_EQ(results["n_studies"], studies.size());
  EXPECT_EQ(results["failed_studies"], 0);
  EXPECT_EQ(results["classes"].size(), 5u);
  EXPECT_EQ(results["protocol"]["bootstrap"]["resamples"], 200);
  EXPECT_EQ(results["protocol"]["mode"], "multiclass");
  EXPECT_GT(results["protocol"]["logit_scale"].get<double>(), 0.0);
  const auto rows = read_scores(out / "scores.csv");
  // Synthetic labels are one-hot: every test study is in the multiclass population, one row per class.
  EXPECT_EQ(rows.size(), 5 * studies.size());
  expect_auc_matches_scores(results, rows);
  // Softmax scores: each study's five scores sum to 1, and the label is the study's diagnosis.
  std::map<std::string, double> sums;
  for (const auto& r : rows)
    sums[r.study] += r.score;
  for (const auto& study : studies) {
    EXPECT_NEAR(sums[study["study"].get<std::string>()], 1.0, 1e-9);
    for (const auto& r : rows) {
      if (r.study == study["study"]) {
        EXPECT_EQ(r.label, study["labels"][r.cls].get<int>());
      }
    }
  }
  // Means cover the included classes; excluded ones are listed.
  const size_t included = results["classes"].size() - results["excluded"].size();
  EXPECT_EQ(results["mean"]["n_classes"], included);
}

TEST_F(ZeroShot, TemplateReplacesTheTasksTemplates) {
  const fs::path out = root() / "out-template";
  const auto result =
      run_hlip("zeroshot --model " + model() + " --data " + cache() +
               " --split test --task synth-brain-5 --template \"{c}.\" --no-progress --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json results = json::parse(read_file((out / "results.json").string()));
  EXPECT_EQ(results["protocol"]["templates"], json({"{c}."}));
  for (const auto& cls : results["protocol"]["task_definition"]["classes"])
    EXPECT_EQ(cls["templates"], json({"{c}."})) << cls["name"];

  const auto bad = run_hlip("zeroshot --model " + model() + " --data " + cache() +
                            " --split test --task synth-brain-5 --template plain --no-progress --out " +
                            (root() / "out-bad-template").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_NE(bad.err.find("template \"plain\" has no {c}"), std::string::npos) << bad.err;
}

TEST_F(ZeroShot, AnomalyTaskSkipsStudiesOfOtherDiseasesAndCountsThem) {
  const fs::path out = root() / "out-anomaly";
  const auto result =
      run_hlip("zeroshot --model " + model() + " --data " + cache() +
               " --task synth-anomaly --bootstrap 50 --seed 4 --no-progress --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json results = json::parse(read_file((out / "results.json").string()));
  const auto studies = test_studies();
  const auto rows = read_scores(out / "scores.csv");
  expect_auc_matches_scores(results, rows);
  for (const char* disease : {"stroke", "glioma", "meningioma", "metastasis"}) {
    int neither = 0;
    for (const auto& study : studies)
      neither += study["labels"][disease] == 0 && study["labels"]["normal"] == 0;
    const json& skipped = results["classes"][disease]["skipped"];
    const std::string reason = std::string("neither ") + disease + " nor normal";
    EXPECT_EQ(skipped.value(reason, 0), neither) << disease << ": " << skipped.dump();
    EXPECT_EQ(results["classes"][disease]["threshold"], 0.5);
  }
  EXPECT_EQ(results["protocol"]["bootstrap"]["seed"], 4);
  // Probabilities of a softmax pair.
  for (const auto& r : rows) {
    EXPECT_GT(r.score, 0.0);
    EXPECT_LT(r.score, 1.0);
  }
}

// A manifest of raw files (preprocessed on every load with --preset) with one test study whose scan is
// missing: it is logged, counted in failed_studies and left out; the others are scored.
TEST_F(ZeroShot, ManifestStudiesThatCannotBeReadAreCounted) {
  const fs::path manifest = root() / "data" / "with-broken.jsonl";
  {
    std::ofstream out(manifest);
    for (const auto& line : lines_of(root() / "data" / "studies.jsonl"))
      out << line << "\n";
    out << R"({"study": "broken", "modality": "mri", "split": "test", "scans": ["nowhere.nii.gz"],)"
        << R"( "report": ["x."], "labels": {"normal": 1, "stroke": 0, "glioma": 0, "meningioma": 0,)"
        << R"( "metastasis": 0}})"
        << "\n";
  }
  const fs::path out = root() / "out-manifest";
  const auto result = run_hlip("zeroshot --model " + model() + " --data " + manifest.string() + " --preset " +
                               (root() / "small.toml").string() +
                               " --task synth-brain-5 --bootstrap 20 --no-progress --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("1 failed to load"), std::string::npos) << result.out;
  EXPECT_NE((result.out + result.err).find("study broken skipped"), std::string::npos) << result.err;
  const json results = json::parse(read_file((out / "results.json").string()));
  EXPECT_EQ(results["failed_studies"], 1);
  EXPECT_EQ(results["n_studies"], test_studies().size());
  // The same studies as the cache gives, with the same preprocessing: the same scores.
  const fs::path cached = root() / "out-cached";
  ASSERT_EQ(run_hlip("zeroshot --model " + model() + " --data " + cache() +
                     " --task synth-brain-5 --bootstrap 20 --no-progress --out " + cached.string())
                .exit_code,
            0);
  const auto from_manifest = read_scores(out / "scores.csv");
  const auto from_cache = read_scores(cached / "scores.csv");
  ASSERT_EQ(from_manifest.size(), from_cache.size());
  for (size_t i = 0; i < from_cache.size(); ++i) {
    EXPECT_EQ(from_manifest[i].study, from_cache[i].study);
    // The cache stores uint8 voxels (HLIP's format), the manifest path keeps float32: close, not equal.
    EXPECT_NEAR(from_manifest[i].score, from_cache[i].score, 0.02) << from_cache[i].study;
  }
}

TEST_F(ZeroShot, OneStudyFromRawFilesGetsARankedTable) {
  const auto studies = test_studies();
  ASSERT_FALSE(studies.empty());
  // The raw NIfTI files of the first test study, from the source manifest.
  std::string paths;
  for (const auto& line : lines_of(root() / "data" / "studies.jsonl")) {
    const json study = json::parse(line);
    if (study["study"] != studies.front()["study"]) continue;
    for (const auto& scan : study["scans"])
      paths += " " + (root() / "data" / scan["path"].get<std::string>()).string();
  }
  ASSERT_FALSE(paths.empty());
  const std::string base = "zeroshot --model " + model() + " --preset " + cache() + " --study" + paths;
  const auto table = run_hlip(base + " --task synth-brain-5");
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_NE(table.err.find("preset small"), std::string::npos) << table.err;
  EXPECT_NE(table.out.find("rank"), std::string::npos) << table.out;
  for (const char* name : {"normal", "stroke", "glioma", "meningioma", "metastasis"})
    EXPECT_NE(table.out.find(name), std::string::npos) << name;

  const auto as_json = run_hlip(base + " --task synth-brain-5 --json");
  ASSERT_EQ(as_json.exit_code, 0) << as_json.err;
  const json ranked = json::parse(as_json.out);
  ASSERT_EQ(ranked["classes"].size(), 5u);
  EXPECT_EQ(ranked["preset"]["name"], "small");
  double total = 0;
  for (size_t i = 0; i < 5; ++i) {
    total += ranked["classes"][i]["score"].get<double>();
    if (i > 0) {
      EXPECT_GE(ranked["classes"][i - 1]["score"], ranked["classes"][i]["score"]);
    }
  }
  EXPECT_NEAR(total, 1.0, 1e-9);

  const auto classes = run_hlip(base + " --classes \"glioma, meningioma\" --json");
  ASSERT_EQ(classes.exit_code, 0) << classes.err;
  EXPECT_EQ(json::parse(classes.out)["classes"].size(), 2u);

  // Without --preset: the preset the model folder records (here the cache's, copied into its config).
  const fs::path recorded = root() / "model-with-preset";
  assemble_model(recorded);
  json config = json::parse(read_file((recorded / "open_clip_config.json").string()));
  config["preprocess_cfg"]["hlip_preset"] =
      json::parse(read_file((root() / "cache" / "cache.json").string()))["presets"]["*"];
  std::ofstream(recorded / "open_clip_config.json", std::ios::trunc) << config.dump(1);
  const auto from_model =
      run_hlip("zeroshot --model " + recorded.string() + " --task synth-brain-5 --json --study" + paths);
  ASSERT_EQ(from_model.exit_code, 0) << from_model.err;
  EXPECT_NE(from_model.err.find("preset small (from "), std::string::npos) << from_model.err;
  EXPECT_NE(from_model.err.find("preprocess_cfg.hlip_preset"), std::string::npos) << from_model.err;
  EXPECT_EQ(json::parse(from_model.out)["classes"], ranked["classes"]);
}

// The float32 voxels of a .npy file (as `hlip convert` writes them: little-endian, version 1 header).
std::vector<float> read_npy_floats(const std::string& path) {
  const std::string bytes = read_file(path);
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) return {};
  const size_t header_length =
      static_cast<unsigned char>(bytes[8]) | (static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8);
  if (bytes.find("'<f4'") > 10 + header_length) return {};
  std::vector<float> out((bytes.size() - 10 - header_length) / sizeof(float));
  std::memcpy(out.data(), bytes.data() + 10 + header_length, out.size() * sizeof(float));
  return out;
}

TEST_F(ZeroShot, ExplainWritesARelevanceMapOnEachScansOwnGrid) {
  const auto studies = test_studies();
  ASSERT_FALSE(studies.empty());
  std::vector<std::string> inputs;
  for (const auto& line : lines_of(root() / "data" / "studies.jsonl")) {
    const json study = json::parse(line);
    if (study["study"] != studies.front()["study"]) continue;
    for (const auto& scan : study["scans"])
      inputs.push_back((root() / "data" / scan["path"].get<std::string>()).string());
  }
  ASSERT_FALSE(inputs.empty());
  std::string paths;
  for (const auto& input : inputs)
    paths += " " + input;
  const std::string base = "zeroshot --model " + model() + " --preset " + cache() +
                           " --task synth-brain-5 --study" + paths + " --json --explain ";
  const fs::path out = root() / "explain";
  const auto run = run_hlip(base + out.string());
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json printed = json::parse(run.out);
  const json explained = json::parse(read_file((out / "explain.json").string()));
  EXPECT_EQ(printed["explain"], explained);
  EXPECT_EQ(explained["class"], printed["classes"][0]["class"]);  // the top-ranked class by default
  EXPECT_NEAR(explained["score"].get<double>(), printed["classes"][0]["score"].get<double>(), 1e-9);
  ASSERT_EQ(explained["files"].size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    const json& file = explained["files"][i];
    EXPECT_EQ(file["input"], inputs[i]);
    const std::string map = file["relevance"];
    // Same grid and affine as the input, so a viewer overlays the two.
    const auto input_info = run_hlip("info --json " + inputs[i]);
    const auto map_info = run_hlip("info --json " + map);
    ASSERT_EQ(map_info.exit_code, 0) << map_info.err;
    const json a = json::parse(input_info.out), b = json::parse(map_info.out);
    EXPECT_EQ(b["shape"], a["shape"]) << map;
    EXPECT_EQ(b["dtype"], "float32");
    for (int r = 0; r < 4; ++r) {
      for (int c = 0; c < 4; ++c)
        EXPECT_NEAR(b["affine"][r][c].get<double>(), a["affine"][r][c].get<double>(), 1e-5) << map;
    }
    // Non-trivial: finite, most voxels non-zero (the input is cropped little), both signs present.
    const std::string npy = (out / ("map" + std::to_string(i) + ".npy")).string();
    ASSERT_EQ(run_hlip("convert " + map + " " + npy).exit_code, 0);
    const std::vector<float> values = read_npy_floats(npy);
    size_t shape_product = 1;
    for (const auto& n : a["shape"])
      shape_product *= n.get<size_t>();
    ASSERT_EQ(values.size(), shape_product);
    size_t nonzero = 0, positive = 0;
    for (float v : values) {
      ASSERT_TRUE(std::isfinite(v));
      nonzero += v != 0.0f;
      positive += v > 0.0f;
    }
    EXPECT_GT(nonzero, values.size() / 4) << map;
    EXPECT_GT(positive, 0u) << map;
    EXPECT_LT(positive, nonzero) << map;
  }

  // Deterministic, and --explain-class picks the class.
  const auto again = run_hlip(base + (root() / "explain-again").string());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  const std::string second_map = json::parse(again.out)["explain"]["files"][0]["relevance"];
  ASSERT_EQ(run_hlip("convert " + second_map + " " + (out / "again.npy").string()).exit_code, 0);
  EXPECT_EQ(read_file((out / "again.npy").string()), read_file((out / "map0.npy").string()));
  const auto glioma = run_hlip(base + (root() / "explain-glioma").string() + " --explain-class glioma");
  ASSERT_EQ(glioma.exit_code, 0) << glioma.err;
  EXPECT_EQ(json::parse(glioma.out)["explain"]["class"], "glioma");
  EXPECT_EQ(json::parse(read_file((root() / "explain-glioma" / "explain.json").string()))["class_index"], 2);

  const auto unknown = run_hlip(base + (root() / "x").string() + " --explain-class gliom");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("--explain-class \"gliom\": not a class of task synth-brain-5 (classes: normal"),
            std::string::npos)
      << unknown.err;
  const auto split = run_hlip("zeroshot --model " + model() + " --data " + cache() + " --out " +
                              (root() / "x").string() + " --task synth-brain-5 --explain " + out.string());
  EXPECT_EQ(split.exit_code, 2);
  EXPECT_NE(split.err.find("--explain is for --study"), std::string::npos) << split.err;
}

TEST_F(ZeroShot, EmbedWritesEveryStudyWithItsId) {
  const fs::path out = root() / "emb" / "test.safetensors";
  const auto result = run_hlip("embed --model " + model() + " --data " + cache() +
                               " --split test --no-progress --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json header = read_safetensors_header(out.string());
  const auto studies = test_studies();
  EXPECT_EQ(header["image_embeds"]["shape"], json::array({studies.size(), 1, 24}));
  const json ids = json::parse(header["__metadata__"]["studies"].get<std::string>());
  ASSERT_EQ(ids.size(), studies.size());
  for (size_t i = 0; i < ids.size(); ++i)
    EXPECT_EQ(ids[i], studies[i]["study"]);
  EXPECT_EQ(header["__metadata__"]["split"], "test");
}

TEST_F(ZeroShot, EmbedInBf16StaysCloseToFp32) {
  std::map<std::string, std::vector<float>> rows;
  for (const char* precision : {"fp32", "bf16"}) {
    const fs::path out = root() / "emb" / (std::string(precision) + ".safetensors");
    const auto result =
        run_hlip("embed --model " + model() + " --data " + cache() +
                 " --split test --no-progress --precision " + precision + " --out " + out.string());
    ASSERT_EQ(result.exit_code, 0) << result.err;
    EXPECT_EQ(read_safetensors_header(out.string())["__metadata__"]["precision"], precision);
    rows[precision] = as_floats(read_safetensors_raw(out.string()).at("image_embeds"));
  }
  ASSERT_EQ(rows["fp32"].size(), rows["bf16"].size());
  bool differs = false;
  for (size_t start = 0; start < rows["fp32"].size(); start += 24) {
    double dot = 0.0;
    for (size_t e = start; e < start + 24; ++e) {
      dot += static_cast<double>(rows["fp32"][e]) * rows["bf16"][e];
      differs = differs || rows["fp32"][e] != rows["bf16"][e];
    }
    EXPECT_GT(dot, 0.99) << "study " << start / 24;  // unit rows: the cosine
  }
  EXPECT_TRUE(differs);  // bf16 really ran
  const auto bad =
      run_hlip("embed --model " + model() + " --data " + cache() + " --out x.safetensors --precision fp16");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("fp16"), std::string::npos) << bad.err;
}

TEST_F(ZeroShot, EmbedAddsReportAndTextEmbeddingsWithTheirIds) {
  const auto studies = test_studies();
  ASSERT_FALSE(studies.empty());
  std::string report;  // the first test study's report as study_report_text builds it
  for (const auto& sentence : studies.front()["report"])
    report += (report.empty() ? "" : " ") + sentence.get<std::string>();
  const fs::path texts = root() / "prompts.txt";
  std::ofstream(texts) << "normal\tThis study shows: normal.\nagain\tThis study shows: normal.\n\n"
                       << report << "\n";
  const fs::path out = root() / "emb" / "texts.safetensors";
  const auto result =
      run_hlip("embed --model " + model() + " --data " + cache() +
               " --split test --no-progress --reports --texts " + texts.string() + " --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json header = read_safetensors_header(out.string());
  const json& metadata = header["__metadata__"];
  EXPECT_EQ(header["report_embeds"]["shape"], json::array({studies.size(), 24}));
  EXPECT_EQ(header["text_embeds"]["shape"], json::array({3, 24}));
  EXPECT_EQ(json::parse(metadata["report_studies"].get<std::string>()),
            json::parse(metadata["studies"].get<std::string>()));  // every synthetic study has a report
  EXPECT_EQ(json::parse(metadata["report_skipped"].get<std::string>()), json::object());
  EXPECT_EQ(metadata["report_source"], "report");
  EXPECT_EQ(json::parse(metadata["text_ids"].get<std::string>()), json::array({"normal", "again", report}));
  EXPECT_EQ(json::parse(metadata["texts"].get<std::string>())[0], "This study shows: normal.");

  const auto tensors = read_safetensors_raw(out.string());
  const std::vector<float> text = as_floats(tensors.at("text_embeds"));
  const std::vector<float> reports = as_floats(tensors.at("report_embeds"));
  double norm = 0.0;
  for (size_t e = 0; e < 24; ++e) {
    EXPECT_EQ(text[e], text[24 + e]);                  // one text, one embedding
    EXPECT_NEAR(text[48 + e], reports[e], 1e-5) << e;  // the report written out as a text
    norm += static_cast<double>(text[e]) * text[e];
  }
  EXPECT_NEAR(norm, 1.0, 1e-5);

  std::ofstream(root() / "dup.txt") << "a\tone\na\ttwo\n";
  const auto dup =
      run_hlip("embed --model " + model() + " --data " + cache() + " --out " +
               (root() / "x.safetensors").string() + " --texts " + (root() / "dup.txt").string());
  EXPECT_EQ(dup.exit_code, 1);
  EXPECT_NE(dup.err.find("dup.txt:2: id \"a\" appears twice"), std::string::npos) << dup.err;
  const auto source =
      run_hlip("embed --model " + model() + " --data " + cache() + " --no-progress --out " +
               (root() / "x.safetensors").string() + " --reports --report-source radiologist");
  EXPECT_EQ(source.exit_code, 1);
  EXPECT_NE(source.err.find("has a report \"radiologist\""), std::string::npos) << source.err;
  EXPECT_FALSE(fs::exists(root() / "x.safetensors"));
}

TEST_F(ZeroShot, BadInputGivesOneLineErrors) {
  const std::string task_file = (root() / "bad-task.json").string();
  std::ofstream(task_file) << R"({"name": "x", "mode": "positive", "templates": ["{c}"], "clases": []})";
  const auto bad_task = run_hlip("zeroshot --model " + model() + " --data " + cache() + " --out " +
                                 (root() / "x").string() + " --task " + task_file);
  EXPECT_EQ(bad_task.exit_code, 1);
  EXPECT_NE(bad_task.err.find("bad-task.json: \"clases\": unknown field"), std::string::npos) << bad_task.err;
  EXPECT_EQ(count_lines(bad_task.err), 1) << bad_task.err;

  const auto missing = run_hlip("zeroshot --model " + model() + " --preset " + cache() +
                                " --task synth-brain-5 " + "--study " + (root() / "nowhere.nii.gz").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("nowhere.nii.gz"), std::string::npos) << missing.err;

  const auto manifest =
      run_hlip("zeroshot --model " + model() + " --task synth-brain-5 --out " + (root() / "x").string() +
               " --data " + (root() / "data" / "studies.jsonl").string());
  EXPECT_EQ(manifest.exit_code, 2);
  EXPECT_NE(manifest.err.find("--preset"), std::string::npos) << manifest.err;

  const auto both = run_hlip("zeroshot --model " + model() + " --data " + cache() +
                             " --out x --task synth-brain-5 " + "--classes a,b");
  EXPECT_EQ(both.exit_code, 2);

  // --device is checked before any study is read (the embedding commands share the flag).
  for (const std::string& command : {"zeroshot --task synth-brain-5 --out " + (root() / "x").string(),
                                     "embed --out " + (root() / "x.safetensors").string()}) {
    const auto device = run_hlip(command + " --model " + model() + " --data " + cache() + " --device cuda:x");
    EXPECT_EQ(device.exit_code, 2) << command << ": " << device.err;
    EXPECT_NE(device.err.find("--device \"cuda:x\" is not cpu, cuda or cuda:N"), std::string::npos)
        << device.err;
  }
}

// synth-ich on synthetic head CT, each series prepared into three windowed scans: the task's label keys are
// the CT studies' labels, and scores.csv reproduces the AUCs.
TEST(ZeroShotCt, SynthIchScoresTheSyntheticCtLabels) {
  TempDir temp("hlip_e2e_zeroshot_ct");
  const fs::path root = temp.path();
  const auto synth = run_hlip("synth --modality ct --out " + (root / "data").string() +
                              " --studies 16 --seed 2 --splits 0.25,0,0.75 --no-progress");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  std::ofstream(root / "small-ct.toml")
      << "base = \"ct-head\"\nname = \"small-ct\"\noutput_size = [8, 24, 40]\nresize_size = 40\n";
  const auto prepare = run_hlip("prepare --manifest " + (root / "data" / "studies.jsonl").string() +
                                " --out " + (root / "cache").string() + " --preset " +
                                (root / "small-ct.toml").string() + " --no-progress");
  ASSERT_EQ(prepare.exit_code, 0) << prepare.err;
  assemble_model(root / "model");

  const fs::path out = root / "out";
  const auto result =
      run_hlip("zeroshot --model " + (root / "model").string() + " --data " + (root / "cache").string() +
               " --split test --task synth-ich --bootstrap 20 --no-progress --out " + out.string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const json results = json::parse(read_file((out / "results.json").string()));
  EXPECT_EQ(results["task"], "synth-ich");
  EXPECT_EQ(results["failed_studies"], 0);
  EXPECT_EQ(results["n_studies"], 12);
  EXPECT_EQ(results["classes"].size(), 6u);
  EXPECT_FALSE(results["classes"]["any"]["auc"].is_null());
  const auto rows = read_scores(out / "scores.csv");
  expect_auc_matches_scores(results, rows);
  std::map<std::string, json> labels;
  for (const auto& line : lines_of(root / "cache" / "studies.jsonl")) {
    const json study = json::parse(line);
    labels[study["study"]] = study["labels"];
  }
  const std::map<std::string, std::string> keys{{"any", "Any"},
                                                {"epidural", "Epidural"},
                                                {"intraparenchymal", "Intraparenchymal"},
                                                {"intraventricular", "Intraventricular"},
                                                {"subarachnoid", "Subarachnoid"},
                                                {"subdural", "Subdural"}};
  for (const auto& r : rows)
    EXPECT_EQ(r.label, labels.at(r.study).at(keys.at(r.cls)).get<int>()) << r.study << " " << r.cls;
}

}  // namespace
}  // namespace hlip::test
