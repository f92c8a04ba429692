// `hlip synth --modality both` then `hlip prepare` with the demo presets of each modality: every scan synth
// writes (NIfTI and DICOM series) is prepared, and each CT series becomes one scan per window.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cli_runner.h"
#include "temp_dir.h"

namespace hlip::test {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

TEST(SynthCt, BothModalitiesArePreparedWithoutAFailure) {
  TempDir temp("hlip_e2e_synth_ct");
  const fs::path data = temp.path() / "data";
  const auto synth =
      run_hlip("synth --modality both --out " + data.string() + " --studies 12 --seed 1 --no-progress");
  ASSERT_EQ(synth.exit_code, 0) << synth.err;
  EXPECT_NE(synth.out.find("wrote 12 studies"), std::string::npos) << synth.out;
  EXPECT_NE(synth.out.find("as DICOM series"), std::string::npos)
      << "seed 1 has no DICOM study: " << synth.out;

  // One manifest per modality, next to the data so the scan paths stay valid.
  std::map<std::string, std::string> manifests;
  int dicom = 0;
  for (const auto& line : lines_of((data / "studies.jsonl").string())) {
    const auto study = json::parse(line);
    manifests[study.at("modality")] += line + "\n";
    dicom += fs::is_directory(data / study.at("scans")[0].at("path").get<std::string>()) ? 1 : 0;
  }
  ASSERT_EQ(manifests.size(), 2u);
  EXPECT_GT(dicom, 0);
  for (const auto& [modality, text] : manifests)
    std::ofstream(data / (modality + ".jsonl")) << text;

  const std::map<std::string, std::string> presets{{"mri", "demo.toml"}, {"ct", "demo-ct.toml"}};
  for (const auto& [modality, preset] : presets) {
    const fs::path cache = temp.path() / ("cache-" + modality);
    const auto prepared =
        run_hlip("prepare --manifest " + (data / (modality + ".jsonl")).string() + " --out " +
                 cache.string() + " --preset " + HLIP_PRESET_DIR + "/" + preset + " --no-progress");
    ASSERT_EQ(prepared.exit_code, 0) << prepared.err;
    EXPECT_NE(prepared.out.find("prepared 6 of 6 studies"), std::string::npos) << prepared.out;
    EXPECT_NE(prepared.out.find(" 0 failed scans, 0 failed studies"), std::string::npos) << prepared.out;
    EXPECT_TRUE(lines_of((cache / "failures.jsonl").string()).empty());
    for (const auto& line : lines_of((cache / "studies.jsonl").string())) {
      const auto study = json::parse(line);
      if (modality == "ct") {
        std::vector<std::string> names;
        for (const auto& scan : study.at("scans"))
          names.push_back(scan.at("name"));
        EXPECT_EQ(names, (std::vector<std::string>{"CT-brain", "CT-subdural", "CT-bone"})) << line;
      }
      for (const auto& scan : study.at("scans")) {
        const fs::path npy = cache / scan.at("path").get<std::string>();
        const auto sidecar = json::parse(read_file(fs::path(npy).replace_extension(".json").string()));
        EXPECT_EQ(sidecar.at("shape"), json({16, 64, 64})) << npy;
      }
    }
  }
}

}  // namespace
}  // namespace hlip::test
