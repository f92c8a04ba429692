// CSV tables into manifests: RFC 4180 parsing, rows merged into studies, paths and labels checked.
#include <gtest/gtest.h>

#include <fstream>

#include "hlip/data/csv_manifest.h"
#include "hlip/data/manifest.h"
#include "temp_dir.h"

namespace hlip::data {
namespace {

using test::error_message;
using test::TempDir;

void write_text(const std::string& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST(CsvRecord, QuotesCommasAndNewlines) {
  const std::string text = "a,\"b, c\",\"say \"\"hi\"\"\",\"two\nlines\"\r\nnext,\n";
  size_t pos = 0;
  EXPECT_EQ(parse_csv_record(text, pos), (std::vector<std::string>{"a", "b, c", "say \"hi\"", "two\nlines"}));
  EXPECT_EQ(parse_csv_record(text, pos), (std::vector<std::string>{"next", ""}));
  EXPECT_EQ(pos, text.size());
  size_t open = 0;
  EXPECT_THROW(parse_csv_record("\"never closed", open), Error);
}

TEST(CsvManifest, RowsBecomeStudiesTheManifestReaderAccepts) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "data");
  write_text(dir.file("data/table.csv"),
             "study,scan,scan_name,report,split,glioma,stroke\n"
             "s1,s1/t1.nii.gz;s1/flair.nii.gz,T1;FLAIR,\"Left frontal mass. No bleed.\",train,1,0\n"
             "s2,s2/t1.nii.gz,T1,Normal study.,val,0,\n"
             "s1,s1/dwi.nii.gz,DWI,\"Left frontal mass. No bleed.\",train,1,0\n");
  CsvManifestOptions options;
  options.csv = dir.file("data/table.csv");
  options.out = dir.file("studies.jsonl");
  EXPECT_EQ(csv_to_manifest(options), 2);
  const auto studies = read_manifest(options.out);
  ASSERT_EQ(studies.size(), 2u);
  EXPECT_EQ(studies[0].id, "s1");
  ASSERT_EQ(studies[0].scans.size(), 3u);
  EXPECT_EQ(studies[0].scans[1].name, "FLAIR");
  EXPECT_EQ(studies[0].scans[2].path, dir.file("data/s1/dwi.nii.gz"));
  EXPECT_EQ(studies[0].report, (std::vector<std::string>{"Left frontal mass.", "No bleed."}));
  EXPECT_EQ(studies[0].labels, (std::map<std::string, int>{{"glioma", 1}, {"stroke", 0}}));
  EXPECT_EQ(studies[1].split, "val");
  EXPECT_EQ(studies[1].labels, (std::map<std::string, int>{{"glioma", 0}}));  // the empty cell is left out
  EXPECT_EQ(studies[1].modality, "mri");
}

TEST(CsvManifest, ErrorsNameTheRowAndColumn) {
  TempDir dir;
  CsvManifestOptions options;
  options.csv = dir.file("t.csv");
  options.out = dir.file("m.jsonl");
  write_text(options.csv, "study,path\ns1,a.nii\n");
  EXPECT_NE(error_message([&] { csv_to_manifest(options); }).find("no column \"scan\""), std::string::npos);
  write_text(options.csv, "study,scan,glioma\ns1,a.nii,yes\n");
  EXPECT_NE(error_message([&] {
              csv_to_manifest(options);
            }).find("t.csv:2: column \"glioma\" is \"yes\", expected an integer label"),
            std::string::npos);
  write_text(options.csv, "study,scan,glioma\ns1,a.nii,1\ns1,b.nii,0\n");
  EXPECT_NE(error_message([&] {
              csv_to_manifest(options);
            }).find("t.csv:3: study \"s1\" has a different \"labels\""),
            std::string::npos);
  write_text(options.csv, "study,scan\ns1,../a.nii\n");
  EXPECT_NE(error_message([&] { csv_to_manifest(options); }).find("outside the manifest's folder"),
            std::string::npos);
  write_text(options.csv, "study,scan\ns1\n");
  EXPECT_NE(error_message([&] { csv_to_manifest(options); }).find("1 fields, the header has 2"),
            std::string::npos);
}

}  // namespace
}  // namespace hlip::data
