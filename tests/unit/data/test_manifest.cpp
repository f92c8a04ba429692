#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hlip/core/error.h"
#include "hlip/data/manifest.h"

namespace hlip::data {
namespace {

std::string error_of(const std::string& line) {
  try {
    parse_manifest_line(line, "/data", "studies.jsonl", 7);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Manifest, ParsesAFullLine) {
  const auto study = parse_manifest_line(
      R"({"study": "s1", "modality": "mri", "split": "train", "scans": [{"path": "s1/t1.nii.gz", "name": "T1"}, "s1/flair.nii.gz"],
          "report": ["One.", "Two."], "reports": {"terse": "Short."}, "labels": {"glioma": 1, "normal": false}})",
      "/data", "studies.jsonl", 3);
  EXPECT_EQ(study.id, "s1");
  EXPECT_EQ(study.split, "train");
  ASSERT_EQ(study.scans.size(), 2u);
  EXPECT_EQ(study.scans[0].path, "/data/s1/t1.nii.gz");
  EXPECT_EQ(study.scans[0].name, "T1");
  EXPECT_EQ(study.scans[1].name, "");
  EXPECT_EQ(study.report, (std::vector<std::string>{"One.", "Two."}));
  EXPECT_EQ(report_sentences(study, "terse"), std::vector<std::string>{"Short."});
  EXPECT_EQ(report_sentences(study, ""), study.report);
  EXPECT_EQ(study.labels.at("glioma"), 1);
  EXPECT_EQ(study.labels.at("normal"), 0);
  EXPECT_EQ(study.line, 3);
}

TEST(Manifest, QuestionsAndAnswers) {
  const auto study = parse_manifest_line(
      R"({"study": "s", "modality": "mri", "scans": ["a"], "qa": [{"type": "side", "question": "Which side?",
          "answer": "left"}, {"question": "Any lesion?", "answer": "no"}]})",
      "/d", "m", 1);
  ASSERT_EQ(study.qa.size(), 2u);
  EXPECT_EQ(study.qa[0].type, "side");
  EXPECT_EQ(study.qa[0].answer, "left");
  EXPECT_EQ(study.qa[1].type, "");
  EXPECT_EQ(study.qa[1].question, "Any lesion?");
  EXPECT_NE(error_of(R"({"study": "s", "modality": "mri", "scans": ["a"], "qa": {"q": "a"}})")
                .find("\"qa\" must be an array"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"study": "s", "modality": "mri", "scans": ["a"], "qa": [{"question": "Q?"}]})")
                .find("studies.jsonl:7: \"qa\"[0] has no \"answer\""),
            std::string::npos);
  EXPECT_NE(
      error_of(
          R"({"study": "s", "modality": "mri", "scans": ["a"], "qa": [{"question": "Q?", "answer": 1}]})")
          .find("\"qa\"[0].answer is 1"),
      std::string::npos);
}

TEST(Manifest, ReportFallsBackToTheFirstSource) {
  const auto study = parse_manifest_line(
      R"({"study": "s", "modality": "ct", "scans": ["a.nii"], "reports": {"verbose": ["A."]}})", "/d", "m",
      1);
  EXPECT_EQ(study.report, std::vector<std::string>{"A."});
  EXPECT_THROW(report_sentences(study, "terse"), Error);
}

TEST(Manifest, ErrorsNameFileLineFieldAndValue) {
  EXPECT_NE(error_of("{").find("studies.jsonl:7: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of(R"({"modality": "mri", "scans": ["a"]})").find("missing field \"study\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"study": "s", "modality": "pet", "scans": ["a"]})").find("\"modality\" is \"pet\""),
            std::string::npos);
  EXPECT_NE(error_of(R"({"study": "s", "modality": "mri", "scans": []})")
                .find("\"scans\" must be a non-empty list"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"study": "s", "modality": "mri", "scans": ["../etc/passwd"]})")
                .find("leaves the data root"),
            std::string::npos);
  EXPECT_NE(
      error_of(R"({"study": "s", "modality": "mri", "scans": ["a/../../x"]})").find("leaves the data root"),
      std::string::npos);
  EXPECT_NE(error_of(R"({"study": "s", "modality": "mri", "scans": ["/abs.nii"]})").find("is absolute"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"study": "s", "modality": "mri", "scans": ["a"], "labels": {"x": "yes"}})")
                .find("\"labels\".x"),
            std::string::npos);
}

TEST(Manifest, ReadsAFileAndRefusesDuplicates) {
  const auto dir = std::filesystem::temp_directory_path() / "hlip_manifest_test";
  std::filesystem::create_directories(dir);
  const auto path = (dir / "studies.jsonl").string();
  {
    std::ofstream out(path);
    out << R"({"study": "a", "modality": "mri", "scans": ["a/t1.nii.gz"]})"
        << "\n\n"
        << R"({"study": "b", "modality": "ct", "scans": ["b/ct.nii.gz"]})"
        << "\n";
  }
  const auto studies = read_manifest(path);
  ASSERT_EQ(studies.size(), 2u);
  EXPECT_EQ(studies[1].line, 3);
  EXPECT_EQ(studies[0].scans[0].path, (dir / "a/t1.nii.gz").string());
  {
    std::ofstream out(path, std::ios::app);
    out << R"({"study": "a", "modality": "mri", "scans": ["x.nii"]})"
        << "\n";
  }
  try {
    read_manifest(path);
    FAIL() << "duplicate accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(":4: duplicate study \"a\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_manifest((dir / "missing.jsonl").string()), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hlip::data
