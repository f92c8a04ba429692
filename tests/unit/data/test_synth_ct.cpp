// Synthetic head CT: determinism, agreement of labels, reports and images, and the DICOM series it writes.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/data/synth.h"
#include "hlip/io/dicom.h"
#include "hlip/io/dicom_write.h"
#include "hlip/io/nifti.h"

namespace hlip::data {
namespace {

namespace fs = std::filesystem;

std::string slurp(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string lower(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

bool contains(const std::string& text, const std::string& word) {
  return text.find(word) != std::string::npos;
}

// Words that name each haemorrhage type in every phrasing the reports use.
const std::map<std::string, std::vector<std::string>> kTypeWords{
    {"epidural", {"epidural", "extradural"}},
    {"intraparenchymal", {"intraparenchymal", "intracerebral"}},
    {"intraventricular", {"intraventricular"}},
    {"subarachnoid", {"subarachnoid"}},
    {"subdural", {"subdural"}},
};

bool names_type(const std::string& sentence, const std::string& type) {
  const auto& words = kTypeWords.at(type);
  return std::any_of(words.begin(), words.end(), [&](const std::string& w) { return contains(sentence, w); });
}

bool is_negation(const std::string& sentence) {
  return sentence.rfind("no ", 0) == 0;
}

double median_of(const at::Tensor& values) {
  return at::quantile(values.to(at::kFloat), 0.5).item<double>();
}

// The brain window (level 40, width 80) of HU values, in [0, 1].
at::Tensor brain_window(const at::Tensor& hu) {
  return at::clamp(hu.to(at::kFloat) / 80.0, 0, 1);
}

TEST(SynthCt, SameSeedSameStudyDifferentSeedDifferentStudy) {
  const auto a = generate_ct_study(7, 3, SynthSize::kSmall);
  const auto b = generate_ct_study(7, 3, SynthSize::kSmall);
  const auto c = generate_ct_study(8, 3, SynthSize::kSmall);
  ASSERT_EQ(a.scans.size(), 1u);
  EXPECT_TRUE(at::equal(a.scans[0].volume.data, b.scans[0].volume.data));
  EXPECT_EQ(a.reports, b.reports);
  EXPECT_EQ(a.dicom, b.dicom);
  EXPECT_FALSE(a.scans[0].volume.data.sizes() == c.scans[0].volume.data.sizes() &&
               at::equal(a.scans[0].volume.data, c.scans[0].volume.data));
  EXPECT_EQ(a.id, "ct-000003");
  EXPECT_EQ(a.modality, "ct");
}

TEST(SynthCt, OneAxialSeriesInHounsfieldUnits) {
  for (int64_t index = 0; index < 8; ++index) {
    const auto study = generate_ct_study(1, index, SynthSize::kSmall);
    ASSERT_EQ(study.scans.size(), 1u);
    const auto& volume = study.scans[0].volume;
    EXPECT_EQ(study.scans[0].name, "CT");
    EXPECT_EQ(volume.data.scalar_type(), at::kShort);
    EXPECT_EQ(volume.dims[0], 48);
    EXPECT_NEAR(volume.spacing_mm[2], 5.0, 1e-9);
    EXPECT_GE(volume.spacing_mm[0], 4.4);
    EXPECT_LE(volume.spacing_mm[0], 5.0);
    const at::Tensor hu = volume.data.to(at::kFloat);
    EXPECT_GE(hu.min().item<float>(), -1024);
    EXPECT_NEAR(median_of(hu.masked_select(hu < -500)), -1000, 10) << "air";
    EXPECT_GT(hu.max().item<float>(), 700) << "bone";
    // Brain: the grey and white matter range holds a good share of the head.
    const double brain = (hu.ge(20) & hu.le(45)).sum().item<double>() / (hu > -500).sum().item<double>();
    EXPECT_GT(brain, 0.3) << study.id;
    // Axial slices with a gantry tilt: the slice axis points mostly up, but not exactly.
    const auto& a = volume.affine;
    EXPECT_GT(a[2][2] / volume.spacing_mm[2], 0.9);
    EXPECT_GT(a[0][0], -volume.spacing_mm[0] * 1.0001);
    EXPECT_LT(a[0][0], 0) << "columns run towards the patient's left";
  }
}

TEST(SynthCt, LabelsReportsAndImagesAgree) {
  constexpr int kStudies = 60;
  int normal = 0, two_types = 0, shifted = 0, fractures = 0;
  std::map<std::string, int> seen;
  for (int64_t index = 0; index < kStudies; ++index) {
    const auto study = generate_ct_study(2, index, SynthSize::kSmall);
    const auto& scan = study.scans.at(0);
    std::vector<std::string> verbose, terse;
    for (const auto& s : study.reports.at("verbose"))
      verbose.push_back(lower(s));
    for (const auto& s : study.reports.at("terse"))
      terse.push_back(lower(s));
    std::string verbose_text, terse_text;
    for (const auto& s : verbose)
      verbose_text += s + " ";
    for (const auto& s : terse)
      terse_text += s + " ";

    // Labels are the findings.
    std::set<std::string> types;
    for (const auto& f : study.findings)
      types.insert(f.type);
    EXPECT_EQ(types.size(), study.findings.size()) << study.id;
    EXPECT_EQ(study.labels.at("Any"), study.findings.empty() ? 0 : 1);
    for (const auto& type : ct_haemorrhage_types()) {
      std::string column = type;
      column[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(column[0])));
      EXPECT_EQ(study.labels.at(column), types.count(type) ? 1 : 0) << study.id << " " << column;
    }
    EXPECT_EQ(study.labels.size(), ct_label_columns().size());

    // Negations name only absent types; positive sentences name only present ones.
    for (const auto& sentence : verbose) {
      for (const auto& type : ct_haemorrhage_types()) {
        if (is_negation(sentence)) {
          EXPECT_FALSE(types.count(type) && names_type(sentence, type)) << study.id << ": " << sentence;
        } else if (names_type(sentence, type)) {
          EXPECT_TRUE(types.count(type)) << study.id << ": " << sentence;
        }
      }
    }

    if (study.findings.empty()) {
      ++normal;
      EXPECT_EQ(study.diagnosis, "normal");
      for (const auto& sentence : verbose) {
        if (is_negation(sentence)) continue;
        for (const char* word : {"haemorrhage", "hemorrhage", "haematoma", "hematoma", "blood", "collection",
                                 "midline shift", "hyperdense"})
          EXPECT_FALSE(contains(sentence, word)) << study.id << ": " << sentence;
      }
      for (const auto& sentence : terse) {
        for (const auto& type : ct_haemorrhage_types())
          EXPECT_FALSE(names_type(sentence, type)) << study.id << ": " << sentence;
      }
      EXPECT_EQ(scan.lesion_fraction.max().item<float>(), 0.0f);
      EXPECT_TRUE(scan.finding_fractions.empty());
      EXPECT_EQ(study.midline_shift_mm, 0);
      continue;
    }
    two_types += study.findings.size() == 2 ? 1 : 0;
    const bool fractured = std::any_of(study.findings.begin(), study.findings.end(),
                                       [](const SynthFinding& f) { return f.fracture; });
    EXPECT_FALSE(fractured && contains(verbose_text, "calvarium is intact"))
        << study.id << ": " << verbose_text;
    EXPECT_FALSE(!fractured && contains(verbose_text, "fracture")) << study.id << ": " << verbose_text;
    EXPECT_EQ(study.diagnosis, study.findings.front().type);
    ASSERT_EQ(scan.finding_fractions.size(), study.findings.size());
    const at::Tensor hu = scan.volume.data.to(at::kFloat);
    // Brain voxels away from any blood: the grey/white range.
    const at::Tensor brain = hu.masked_select((scan.lesion_fraction < 0.01) & hu.ge(20) & hu.le(45));
    for (size_t k = 0; k < study.findings.size(); ++k) {
      const auto& f = study.findings[k];
      ++seen[f.type];
      // In the reports: type, side and lobe.
      EXPECT_TRUE(std::any_of(verbose.begin(), verbose.end(),
                              [&](const std::string& s) { return !is_negation(s) && names_type(s, f.type); }))
          << study.id << ": " << verbose_text;
      EXPECT_TRUE(names_type(terse_text, f.type)) << study.id << ": " << terse_text;
      EXPECT_TRUE(f.side.empty() || contains(verbose_text, f.side)) << study.id << ": " << verbose_text;
      EXPECT_TRUE(f.lobe.empty() || contains(verbose_text, f.lobe)) << study.id << ": " << verbose_text;
      EXPECT_TRUE(f.location != "basal cisterns" || contains(verbose_text, "basal cistern")) << verbose_text;
      // A skull fracture comes only with an epidural haematoma, and both reports say so.
      EXPECT_TRUE(!f.fracture || f.type == "epidural") << study.id;
      if (f.type == "epidural") {
        fractures += f.fracture ? 1 : 0;
        EXPECT_EQ(contains(verbose_text, "fracture"), f.fracture) << study.id << ": " << verbose_text;
        EXPECT_EQ(contains(terse_text, "skull fracture"), f.fracture) << study.id << ": " << terse_text;
      }
      // In the image: voxels mostly of this blood are 50-90 HU and brighter than the brain in the brain
      // window.
      const at::Tensor blood_voxels = scan.finding_fractions[k] >= 0.8;
      // Grown for the coarse grid of small studies: every finding fills several whole voxels (4.4-5 mm
      // in-plane, 5 mm slices).
      EXPECT_GE(blood_voxels.sum().item<int64_t>(), 4) << study.id << " " << f.type;
      ASSERT_GT(blood_voxels.sum().item<int64_t>(), 0) << study.id << " " << f.type;
      const at::Tensor blood = hu.masked_select(blood_voxels);
      EXPECT_GE(median_of(blood), 50) << study.id << " " << f.type;
      EXPECT_LE(median_of(blood), 90) << study.id << " " << f.type;
      EXPECT_GT(median_of(brain_window(blood)), median_of(brain_window(brain)) + 0.2)
          << study.id << " " << f.type;
      // Large masses shift the midline, and the reports say by how much.
      const bool large = (f.type == "intraparenchymal" && f.size_mm >= 32) ||
                         (f.type == "subdural" && f.thickness_mm >= 10) ||
                         (f.type == "epidural" && f.thickness_mm >= 12);
      EXPECT_EQ(f.midline_shift_mm > 0, large) << study.id << " " << f.type;
      if (large) {
        EXPECT_GE(study.midline_shift_mm, f.midline_shift_mm);
        const std::string shift = fmt::format("{:.1f} mm", f.midline_shift_mm);
        EXPECT_TRUE(contains(verbose_text, "midline shift") && contains(verbose_text, shift))
            << study.id << ": " << verbose_text;
        EXPECT_TRUE(contains(terse_text, "midline shift " + shift)) << study.id << ": " << terse_text;
      }
    }
    if (study.midline_shift_mm > 0) {
      ++shifted;
    } else {
      for (const auto& sentence : verbose)
        EXPECT_FALSE(contains(sentence, "midline shift") && !is_negation(sentence))
            << study.id << ": " << sentence;
    }
  }
  EXPECT_GT(normal, kStudies / 5);
  EXPECT_LT(normal, kStudies * 3 / 5);
  EXPECT_GT(two_types, 0);
  EXPECT_GT(shifted, 0);
  EXPECT_GT(fractures, 0);
  for (const auto& type : ct_haemorrhage_types())
    EXPECT_GT(seen[type], 0) << type;
}

// A CT series written as DICOM reads back through hlip's reader with the same HU and affine.
TEST(SynthCt, DicomSeriesReadsBackWithItsVoxelsAndAffine) {
  const auto study = generate_ct_study(3, 1, SynthSize::kSmall);
  const auto& volume = study.scans.at(0).volume;
  const fs::path folder = fs::temp_directory_path() / "hlip_synth_ct_dicom";
  fs::remove_all(folder);
  io::DicomWriteOptions options;
  options.study_uid = "2.25.1";
  options.series_uid = "2.25.2";
  io::write_dicom_series(folder.string(), volume, options);
  int files = 0;
  for (const auto& entry : fs::directory_iterator(folder))
    files += entry.path().extension() == ".dcm" ? 1 : 0;
  EXPECT_EQ(files, volume.dims[2]);

  io::DicomSeriesInfo info;
  const auto back = io::read_dicom_series(folder.string(), {}, &info);
  EXPECT_EQ(info.modality, "CT");
  EXPECT_TRUE(info.warnings.empty());
  ASSERT_EQ(back.data.sizes(), volume.data.sizes());
  EXPECT_TRUE(at::equal(back.data, volume.data.to(at::kFloat)));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      EXPECT_NEAR(back.affine[r][c], volume.affine[r][c], 1e-4) << r << "," << c;
  fs::remove_all(folder);
}

TEST(SynthCt, BothModalitiesWriteTheSameBytesForAnyThreadCount) {
  const auto root = fs::temp_directory_path() / "hlip_synth_ct_test";
  fs::remove_all(root);
  SynthOptions options;
  options.studies = 8;
  options.seed = 4;
  options.modality = SynthModality::kBoth;
  options.progress = false;
  options.threads = 1;
  options.out_dir = (root / "a").string();
  const auto summary = write_synthetic_dataset(options);
  options.threads = 2;
  options.out_dir = (root / "b").string();
  write_synthetic_dataset(options);
  options.seed = 5;
  options.out_dir = (root / "c").string();
  write_synthetic_dataset(options);
  // The CT studies of a `both` dataset are those of a CT-only one with the same seed.
  options.seed = 4;
  options.modality = SynthModality::kCt;
  options.studies = 4;
  options.out_dir = (root / "ct").string();
  write_synthetic_dataset(options);
  for (const auto& entry : fs::recursive_directory_iterator(root / "ct" / "ct")) {
    if (!entry.is_regular_file()) continue;
    const auto relative = fs::relative(entry.path(), root / "ct");
    EXPECT_EQ(slurp(entry.path()), slurp(root / "a" / relative)) << relative;
  }
  EXPECT_EQ(summary.studies, 8);
  EXPECT_GT(summary.dicom_series, 0) << "seed 4 has no DICOM study: pick another seed";

  int files = 0, dicom_files = 0, differing = 0;
  for (const auto& entry : fs::recursive_directory_iterator(root / "a")) {
    if (!entry.is_regular_file()) continue;
    const auto relative = fs::relative(entry.path(), root / "a");
    if (!fs::exists(root / "b" / relative)) ADD_FAILURE() << relative << " only in one run";
    const std::string bytes = slurp(entry.path());
    EXPECT_EQ(bytes, slurp(root / "b" / relative)) << relative;
    differing += bytes != slurp(root / "c" / relative) ? 1 : 0;
    dicom_files += entry.path().extension() == ".dcm" ? 1 : 0;
    ++files;
  }
  EXPECT_GT(dicom_files, 0);
  // Another seed: other images and reports (a small label CSV may happen to be the same).
  EXPECT_GT(differing, files / 2);
  EXPECT_NE(slurp(root / "a" / "studies.jsonl"), slurp(root / "c" / "studies.jsonl"));

  // Manifest: MRI and CT alternate; CT labels are in their own CSVs; scans read back as generated.
  std::ifstream manifest(root / "a" / "studies.jsonl");
  std::vector<std::string> ids;
  std::map<std::string, std::string> csv_rows;
  for (const char* split : {"train", "val", "test"}) {
    std::ifstream csv(root / "a" / fmt::format("labels_ct_{}.csv", split));
    std::string header;
    std::getline(csv, header);
    EXPECT_EQ(header, "study,Any,Epidural,Intraparenchymal,Intraventricular,Subarachnoid,Subdural");
    for (std::string row; std::getline(csv, row);)
      csv_rows[row.substr(0, row.find(','))] = row;
  }
  for (std::string line; std::getline(manifest, line);) {
    const auto json = nlohmann::json::parse(line);
    const std::string id = json.at("study");
    ids.push_back(id);
    if (json.at("modality") != "ct") continue;
    const auto study = generate_ct_study(4, std::stoll(id.substr(3)), SynthSize::kSmall);
    std::string row = id;
    for (const auto& column : ct_label_columns())
      row += fmt::format(",{}", json.at("labels").at(column).get<int>());
    EXPECT_EQ(csv_rows.at(id), row);
    EXPECT_EQ(json.at("findings").size(), study.findings.size());
    const std::string path = (root / "a" / json.at("scans")[0].at("path").get<std::string>()).string();
    EXPECT_EQ(fs::is_directory(path), study.dicom) << path;
    const auto volume = io::read_volume(path);
    EXPECT_TRUE(at::equal(volume.data, study.scans[0].volume.data.to(at::kFloat))) << path;
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"mri-000000", "ct-000000", "mri-000001", "ct-000001", "mri-000002",
                                           "ct-000002", "mri-000003", "ct-000003"}));
  EXPECT_EQ(csv_rows.size(), 4u);
  fs::remove_all(root);
}

}  // namespace
}  // namespace hlip::data
