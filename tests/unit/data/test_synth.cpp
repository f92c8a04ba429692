#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/data/synth.h"
#include "hlip/io/nifti.h"

namespace hlip::data {
namespace {

std::string slurp(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string joined(const std::vector<std::string>& sentences) {
  std::string text;
  for (const auto& s : sentences)
    text += s + " ";
  return text;
}

std::string lower(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

const SynthScan* find_scan(const SynthStudy& study, const std::string& name) {
  for (const auto& scan : study.scans) {
    if (scan.name == name) return &scan;
  }
  return nullptr;
}

// Upper-quartile signal of the voxels mostly covered by the lesion (its enhancing rim rather than a necrotic
// centre) over the median signal of the rest of the head.
double lesion_contrast(const SynthScan& scan) {
  const at::Tensor data = scan.volume.data.to(at::kFloat);
  const at::Tensor lesion = scan.lesion_fraction > 0.5;
  const at::Tensor head = (scan.lesion_fraction == 0) & (data > 0.3 * data.max());
  if (lesion.sum().item<int64_t>() == 0) return 0.0;
  return at::quantile(data.masked_select(lesion), 0.75).item<double>() /
         at::quantile(data.masked_select(head), 0.5).item<double>();
}

TEST(Synth, SameSeedSameStudyDifferentSeedDifferentStudy) {
  const auto a = generate_mri_study(7, 3, SynthSize::kSmall);
  const auto b = generate_mri_study(7, 3, SynthSize::kSmall);
  const auto c = generate_mri_study(8, 3, SynthSize::kSmall);
  ASSERT_EQ(a.scans.size(), b.scans.size());
  for (size_t i = 0; i < a.scans.size(); ++i)
    EXPECT_TRUE(at::equal(a.scans[i].volume.data, b.scans[i].volume.data));
  EXPECT_EQ(a.reports, b.reports);
  EXPECT_FALSE(a.scans.size() == c.scans.size() && at::equal(a.scans[0].volume.data, c.scans[0].volume.data));
}

TEST(Synth, StudiesHaveTwoToSixScansWithValidGeometry) {
  for (int64_t index = 0; index < 12; ++index) {
    const auto study = generate_mri_study(1, index, SynthSize::kSmall);
    EXPECT_GE(study.scans.size(), 2u);
    EXPECT_LE(study.scans.size(), 6u);
    EXPECT_NE(find_scan(study, "FLAIR"), nullptr);
    for (const auto& scan : study.scans) {
      EXPECT_EQ(scan.volume.data.scalar_type(), at::kShort);
      EXPECT_EQ(scan.volume.data.dim(), 3);
      EXPECT_GT(scan.volume.data.max().item<int>(), 300) << study.id << " " << scan.name;
      // Thick slices: the slice axis has the largest spacing.
      EXPECT_GT(scan.volume.spacing_mm[2], scan.volume.spacing_mm[0]);
      EXPECT_EQ(scan.lesion_fraction.sizes(), scan.volume.data.sizes());
    }
  }
}

TEST(Synth, LabelsReportsAndImagesAgree) {
  int abnormal = 0;
  for (int64_t index = 0; index < 40; ++index) {
    const auto study = generate_mri_study(2, index, SynthSize::kSmall);
    int positives = 0;
    for (const auto& [name, value] : study.labels)
      positives += value;
    EXPECT_EQ(positives, 1);
    EXPECT_EQ(study.labels.at(study.diagnosis), 1);
    const std::string verbose = lower(joined(study.reports.at("verbose")));
    const std::string terse = lower(joined(study.reports.at("terse")));
    if (study.diagnosis == "normal") {
      EXPECT_TRUE(study.findings.empty());
      for (const char* word : {"glioma", "meningioma", "metasta", "infarct in", "acute ischaemic",
                               "territory", "enhancing lesion", "mass in", "stroke"}) {
        EXPECT_EQ(verbose.find(word), std::string::npos) << study.id << ": " << verbose;
        EXPECT_EQ(terse.find(word), std::string::npos) << study.id << ": " << terse;
      }
      for (const auto& scan : study.scans)
        EXPECT_EQ(scan.lesion_fraction.max().item<float>(), 0.0f);
      continue;
    }
    ++abnormal;
    ASSERT_EQ(study.findings.size(), 1u);
    const auto& finding = study.findings.front();
    EXPECT_NE(verbose.find(finding.side), std::string::npos) << verbose;
    if (finding.type == "stroke") {
      EXPECT_NE(terse.find(lower(finding.territory)), std::string::npos) << terse;
    } else {
      EXPECT_NE(verbose.find(finding.lobe), std::string::npos) << verbose;
      EXPECT_NE(terse.find(finding.type == "metastasis" ? "metasta" : finding.type), std::string::npos)
          << terse;
    }
    // The sequence that shows the finding best shows it brighter than the rest of the head.
    const char* key = finding.type == "stroke" ? "DWI" : finding.type == "glioma" ? "FLAIR" : "T1c";
    const SynthScan* scan = find_scan(study, key);
    ASSERT_NE(scan, nullptr) << study.id << " lacks " << key;
    EXPECT_GT(scan->lesion_fraction.max().item<float>(), 0.5f) << study.id;
    EXPECT_GT(lesion_contrast(*scan), 1.15) << study.id << " " << finding.type << " in " << key;
  }
  EXPECT_GT(abnormal, 15);
}

TEST(Synth, QuestionsAnswerFromTheGroundTruth) {
  std::map<std::string, int> types;
  for (int64_t index = 0; index < 30; ++index) {
    const auto study = generate_mri_study(2, index, SynthSize::kSmall);
    std::map<std::string, std::string> answers;
    for (const auto& q : synth_questions(study)) {
      EXPECT_FALSE(q.question.empty());
      answers[q.type] = q.answer;
      ++types[q.type];
    }
    EXPECT_EQ(answers.at("finding"), study.diagnosis);
    EXPECT_EQ(answers.at("abnormal"), study.findings.empty() ? "no" : "yes");
    if (study.findings.empty()) {
      EXPECT_EQ(answers.size(), 2u) << study.id;
      continue;
    }
    const auto& finding = study.findings.front();
    EXPECT_EQ(answers.at("side"), finding.side);
    const std::string best = answers.at("sequence");
    EXPECT_NE(find_scan(study, best.c_str()), nullptr) << study.id << " asks about " << best;
    if (finding.type == "stroke") {
      EXPECT_EQ(best, "DWI");
      EXPECT_EQ(answers.count("enhancement"), 0u);
    } else if (answers.count("enhancement")) {
      EXPECT_EQ(answers.at("enhancement"), finding.enhancing ? "yes" : "no");
      EXPECT_NE(find_scan(study, "T1c"), nullptr);
    }
  }
  for (const char* type : {"abnormal", "finding", "side", "sequence", "enhancement"})
    EXPECT_GT(types[type], 0) << type;
  // CT
  for (int64_t index = 0; index < 10; ++index) {
    const auto study = generate_ct_study(2, index, SynthSize::kSmall);
    const auto questions = synth_questions(study);
    ASSERT_GE(questions.size(), 3u);
    EXPECT_EQ(questions[0].answer, study.findings.empty() ? "no" : "yes");
    EXPECT_EQ(questions[1].answer, study.findings.empty() ? "none" : study.findings.front().type);
    EXPECT_EQ(questions.back().type, "midline_shift");
  }
}

TEST(Synth, DatasetFilesAreByteIdenticalForTheSameSeed) {
  const auto root = std::filesystem::temp_directory_path() / "hlip_synth_test";
  std::filesystem::remove_all(root);
  SynthOptions options;
  options.studies = 5;
  options.seed = 11;
  options.progress = false;
  options.out_dir = (root / "a").string();
  const auto summary = write_synthetic_dataset(options);
  options.out_dir = (root / "b").string();
  write_synthetic_dataset(options);
  EXPECT_EQ(summary.studies, 5);
  EXPECT_EQ(summary.per_split.at("train"), 4);

  int files = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(root / "a")) {
    if (!entry.is_regular_file()) continue;
    const auto relative = std::filesystem::relative(entry.path(), root / "a");
    EXPECT_EQ(slurp(entry.path()), slurp(root / "b" / relative)) << relative;
    ++files;
  }
  EXPECT_EQ(files, 2 + 3 + summary.scans);  // manifest, README, 3 label files, scans

  std::ifstream manifest(root / "a" / "studies.jsonl");
  int lines = 0;
  for (std::string line; std::getline(manifest, line); ++lines) {
    const auto json = nlohmann::json::parse(line);
    for (const auto& scan : json.at("scans")) {
      const auto volume = io::read_nifti((root / "a" / scan.at("path").get<std::string>()).string());
      EXPECT_EQ(volume.data.dim(), 3);
    }
    EXPECT_FALSE(json.at("report").empty());
    EXPECT_TRUE(json.at("reports").contains("terse"));
  }
  EXPECT_EQ(lines, 5);
  std::filesystem::remove_all(root);
}

TEST(Synth, WrittenScansReadBackWithTheirVoxelsAndAffine) {
  const auto study = generate_mri_study(3, 0, SynthSize::kSmall);
  const auto path = std::filesystem::temp_directory_path() / "hlip_synth_roundtrip.nii.gz";
  const auto& scan = study.scans.front();
  io::write_nifti(path.string(), scan.volume.data, scan.volume.affine);
  io::NiftiReadOptions read_options;
  read_options.values = io::VoxelValues::kStored;
  const auto back = io::read_nifti(path.string(), read_options);
  EXPECT_TRUE(at::equal(back.data, scan.volume.data));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(back.affine[r][c], scan.volume.affine[r][c], 1e-4) << r << "," << c;
  std::filesystem::remove(path);
}

TEST(Synth, RejectsBadOptions) {
  SynthOptions options;
  options.out_dir = "unused";
  options.studies = 0;
  EXPECT_THROW(write_synthetic_dataset(options), Error);
  options.studies = 3;
  options.splits = {0.5, 0.5, 0.5};
  EXPECT_THROW(write_synthetic_dataset(options), Error);
}

}  // namespace
}  // namespace hlip::data
