// `hlip prepare`, `hlip info`, `hlip convert` and `hlip manifest` on synthetic studies, including a mix of
// good and broken ones.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "cli_runner.h"
#include "temp_dir.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

class Prepare : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto synth = run_hlip("synth --out " + data_.string() + " --studies 4 --seed 2 --no-progress");
    ASSERT_EQ(synth.exit_code, 0) << synth.err;
    // A small custom preset keeps the test fast; the published presets are unit-tested.
    std::ofstream(root_ / "small.toml")
        << "base = \"mri-brain\"\nname = \"small\"\noutput_size = [8, 32, 32]\n"
           "resize_size = 36\n";
  }

  std::string prepare(const std::string& extra = "") {
    return "prepare --manifest " + (data_ / "studies.jsonl").string() + " --out " + cache_.string() +
           " --preset " + (root_ / "small.toml").string() + " --no-progress " + extra;
  }

  // Adds three broken studies: a missing file, a truncated .nii.gz, and a line that is not JSON.
  void add_broken_studies() {
    const auto first = json::parse(lines_of(data_ / "studies.jsonl").front());
    const std::string good = first["scans"][0]["path"];
    const auto bytes = read_file((data_ / good).string());
    std::ofstream(data_ / "truncated.nii.gz", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
    std::ofstream out(data_ / "studies.jsonl", std::ios::app);
    out << R"({"study": "missing", "modality": "mri", "scans": ["nowhere.nii.gz"], "report": ["x."]})"
        << "\n";
    out << R"({"study": "truncated", "modality": "mri", "scans": ["truncated.nii.gz"], "report": ["x."]})"
        << "\n";
    out << "{not json\n";
  }

  TempDir temp_{"hlip_e2e_prepare"};
  const fs::path root_ = temp_.path();
  const fs::path data_ = root_ / "data";
  const fs::path cache_ = root_ / "cache";
};

TEST_F(Prepare, GoodStudiesArePreparedAndBadOnesListed) {
  add_broken_studies();
  const auto result = run_hlip(prepare());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_NE(result.out.find("prepared 4 of 7 studies"), std::string::npos) << result.out;
  EXPECT_NE(result.out.find("3 failed studies"), std::string::npos) << result.out;

  const auto failures = lines_of(cache_ / "failures.jsonl");
  ASSERT_EQ(failures.size(), 3u);
  EXPECT_NE(failures[0].find("nowhere.nii.gz"), std::string::npos) << failures[0];
  EXPECT_NE(failures[1].find("truncated.nii.gz"), std::string::npos) << failures[1];
  EXPECT_NE(failures[2].find("\"line\":7"), std::string::npos) << failures[2];

  const auto studies = lines_of(cache_ / "studies.jsonl");
  ASSERT_EQ(studies.size(), 4u);
  const auto study = json::parse(studies[0]);
  EXPECT_FALSE(study["report"].empty());
  EXPECT_FALSE(study["labels"].empty());
  for (const auto& scan : study["scans"]) {
    const fs::path npy = cache_ / scan["path"].get<std::string>();
    EXPECT_TRUE(fs::exists(npy)) << npy;
    // 8×32×32 uint8 after a 128-byte .npy header.
    EXPECT_EQ(fs::file_size(npy), 128u + 8 * 32 * 32);
    const auto sidecar = json::parse(read_file(fs::path(npy).replace_extension(".json").string()));
    EXPECT_EQ(sidecar["shape"], json({8, 32, 32}));
    EXPECT_EQ(sidecar["preset"]["name"], "small");
    EXPECT_EQ(sidecar["source"]["shape"].size(), 3u);
    EXPECT_EQ(sidecar["source"]["affine"].size(), 4u);
    EXPECT_EQ(sidecar["source"]["checksum"].get<std::string>().rfind("crc32:", 0), 0u);
  }
  const auto cache = json::parse(read_file((cache_ / "cache.json").string()));
  EXPECT_EQ(cache["format"], "hlip-cache");
  EXPECT_EQ(cache["studies"], 4);
}

TEST_F(Prepare, ASecondRunReusesWhatIsUnchanged) {
  ASSERT_EQ(run_hlip(prepare()).exit_code, 0);
  const auto again = run_hlip(prepare());
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find(" 0 scans written"), std::string::npos) << again.out;

  // A touched source is prepared again; the others are reused.
  const auto first = json::parse(lines_of(data_ / "studies.jsonl").front());
  const fs::path source = data_ / first["scans"][0]["path"].get<std::string>();
  fs::last_write_time(source, fs::last_write_time(source) + std::chrono::seconds(5));
  const auto third = run_hlip(prepare());
  ASSERT_EQ(third.exit_code, 0) << third.err;
  EXPECT_NE(third.out.find(" 1 scans written"), std::string::npos) << third.out;
}

TEST_F(Prepare, StrictStopsAtTheFirstBadScanWithOneLine) {
  add_broken_studies();
  const auto result = run_hlip(prepare("--strict"));
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(count_lines(result.err), 1) << result.err;
  EXPECT_NE(result.err.find(".nii.gz"), std::string::npos) << result.err;
}

TEST_F(Prepare, InfoAndConvert) {
  const auto first = json::parse(lines_of(data_ / "studies.jsonl").front());
  const std::string scan = (data_ / first["scans"][0]["path"].get<std::string>()).string();
  const auto info = run_hlip("info --json " + scan);
  ASSERT_EQ(info.exit_code, 0) << info.err;
  const auto described = json::parse(info.out);
  EXPECT_EQ(described["dtype"], "int16");
  EXPECT_EQ(described["affine"].size(), 4u);

  const std::string npy = (root_ / "scan.npy").string();
  const auto to_npy = run_hlip("convert " + scan + " " + npy);
  ASSERT_EQ(to_npy.exit_code, 0) << to_npy.err;
  const auto npy_info = json::parse(run_hlip("info --json " + npy).out);
  EXPECT_EQ(npy_info["shape"], described["shape"]);
  EXPECT_EQ(npy_info["dtype"], "float32");

  const std::string canonical = (root_ / "canonical.nii.gz").string();
  ASSERT_EQ(run_hlip("convert --canonical " + scan + " " + canonical).exit_code, 0);
  EXPECT_EQ(json::parse(run_hlip("info --json " + canonical).out)["orientation"], "RAS");

  const auto missing = run_hlip("info " + (root_ / "nothing.nii.gz").string());
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(count_lines(missing.err), 1) << missing.err;
  EXPECT_NE(missing.err.find("nothing.nii.gz"), std::string::npos) << missing.err;
  EXPECT_EQ(run_hlip("convert " + scan + " out.png").exit_code, 2);
}

TEST_F(Prepare, ManifestFromCsv) {
  std::ofstream(data_ / "table.csv") << "study,scan,report,glioma\n"
                                        "a,mri/a/t1.nii.gz,\"Mass. No bleed.\",1\n";
  const auto result = run_hlip("manifest --csv " + (data_ / "table.csv").string() + " --out " +
                               (data_ / "from_csv.jsonl").string());
  ASSERT_EQ(result.exit_code, 0) << result.err;
  const auto line = json::parse(lines_of(data_ / "from_csv.jsonl").at(0));
  EXPECT_EQ(line["scans"][0]["path"], "mri/a/t1.nii.gz");
  EXPECT_EQ(line["labels"]["glioma"], 1);
}

}  // namespace
}  // namespace hlip::test
