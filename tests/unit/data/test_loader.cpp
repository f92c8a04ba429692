// Studies from a scan cache: scan selection, epoch order with source weights,
// and batches that depend only on (seed, epoch, batch), whichever thread builds
// them.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "hlip/data/cache.h"
#include "hlip/data/dataset.h"
#include "hlip/data/loader.h"
#include "temp_dir.h"

namespace hlip::data {
namespace {

using test::error_message;
using test::TempDir;

// A cache folder with `studies` studies of `scans` scans each ([2, 4, 4]
// uint8), split train.
std::string make_cache(const TempDir& dir, const std::string& name, int studies, int scans) {
  const std::string root = dir.file(name);
  std::filesystem::create_directories(root + "/scans");
  std::string manifest;
  for (int s = 0; s < studies; ++s) {
    std::string paths;
    for (int k = 0; k < scans; ++k) {
      const std::string relative = fmt::format("scans/{}{}_{}.npy", name, s, k);
      // Every voxel of scan k of study s is (10·s + k) / 255, so a batch says
      // which scans it holds.
      write_cached_scan(root + "/" + relative, at::full({2, 4, 4}, (10.0 * s + k) / 255.0),
                        CacheDtype::kUint8);
      paths += fmt::format("{}{{\"path\": \"{}\", \"name\": \"s{}\"}}", k ? ", " : "", relative, k);
    }
    manifest += fmt::format(
        "{{\"study\": \"{}{}\", \"modality\": \"mri\", \"split\": \"train\", "
        "\"scans\": [{}], "
        "\"report\": [\"Finding {} one.\", \"Finding {} two.\"]}}\n",
        name, s, paths, s, s);
  }
  std::ofstream(root + "/studies.jsonl") << manifest;
  std::ofstream(root + "/cache.json") << "{\"format\": \"hlip-cache\", \"version\": 1}\n";
  return root;
}

// The scan value (10·s + k) of every scan in a batch image, after undoing the
// normalisation.
std::vector<int> scan_codes(const at::Tensor& image, const Normalization& norm) {
  const at::Tensor values = image.mul(norm.std).add(norm.mean).mul(255).round().to(at::kInt);
  std::vector<int> codes;
  for (int64_t b = 0; b < values.size(0); ++b) {
    for (int64_t n = 0; n < values.size(1); ++n)
      codes.push_back(values[b][n].flatten()[0].item<int>());
  }
  return codes;
}

TEST(SelectScans, EvaluationTakesAllInOrderTrainingExactlyN) {
  Random rng(1);
  EXPECT_EQ(select_scans(3, 0, rng), (std::vector<int64_t>{0, 1, 2}));
  const auto five = select_scans(3, 5, rng);
  ASSERT_EQ(five.size(), 5u);
  // HLIP repeats the shuffled list: the first three are a permutation, then it
  // starts over.
  std::vector<int64_t> first(five.begin(), five.begin() + 3);
  std::sort(first.begin(), first.end());
  EXPECT_EQ(first, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(five[3], five[0]);
  EXPECT_EQ(five[4], five[1]);
  EXPECT_EQ(select_scans(6, 2, rng).size(), 2u);
  Random a(7), b(7);
  EXPECT_EQ(select_scans(8, 4, a), select_scans(8, 4, b));
}

TEST(DataSource, WeightSuffix) {
  EXPECT_EQ(parse_data_source("cache/mri").weight, 1.0);
  const auto weighted = parse_data_source("cache/ct@0.5");
  EXPECT_EQ(weighted.path, "cache/ct");
  EXPECT_EQ(weighted.weight, 0.5);
  EXPECT_EQ(parse_data_source("user@host/x").path,
            "user@host/x");  // not a number: part of the path
  EXPECT_THROW(parse_data_source("cache@-1"), UsageError);
}

TEST(StudyDataset, MixedSourcesWithWeights) {
  TempDir dir;
  const auto mri = make_cache(dir, "m", 4, 2);
  const auto ct = make_cache(dir, "c", 6, 1);
  StudyDataset dataset({{mri, 2.0}, {ct, 0.5}}, "train");
  EXPECT_EQ(dataset.size(), 10);
  const auto order = dataset.epoch_order(3, 0, true);
  std::map<int, int> per_source;
  for (int64_t i : order)
    ++per_source[dataset.entry(i).source];
  EXPECT_EQ(per_source[0], 8);  // every MRI study twice
  EXPECT_LE(per_source[1], 6);  // each CT study with probability one half
  EXPECT_EQ(order, dataset.epoch_order(3, 0, true));
  EXPECT_NE(order, dataset.epoch_order(3, 1, true));
  EXPECT_TRUE(StudyDataset({{mri}}, "val").size() == 0);
}

TEST(StudyDataset, LoadsNormalisedImages) {
  TempDir dir;
  const auto root = make_cache(dir, "m", 2, 3);
  StudyDataset dataset({{root}}, "");
  const at::Tensor image = dataset.load_image(1, {2, 0});
  EXPECT_EQ(image.sizes(), (at::IntArrayRef{2, 1, 2, 4, 4}));
  EXPECT_EQ(scan_codes(image.unsqueeze(0), dataset.normalization()), (std::vector<int>{12, 10}));
}

TEST(StudyDataset, RawManifestNeedsAPreset) {
  TempDir dir;
  std::ofstream(dir.file("m.jsonl")) << R"({"study": "a", "modality": "mri", "scans": ["a.nii.gz"]})"
                                     << "\n";
  const std::string message = error_message([&] { StudyDataset({{dir.file("m.jsonl")}}, ""); });
  EXPECT_NE(message.find("not a prepared cache"), std::string::npos) << message;
}

std::vector<std::vector<int>> run_epoch(StudyLoader& loader, const Normalization& norm, int64_t epoch,
                                        int64_t first = 0) {
  std::vector<std::vector<int>> batches;
  loader.start(epoch, first);
  while (auto batch = loader.next())
    batches.push_back(scan_codes(batch->image, norm));
  return batches;
}

TEST(StudyLoader, SameBatchesWhateverTheWorkersAndOnResume) {
  TempDir dir;
  StudyDataset dataset({{make_cache(dir, "m", 9, 3)}}, "train");
  LoaderOptions options;
  options.batch_size = 2;
  options.num_scans = 4;
  options.seed = 11;
  options.workers = 0;
  StudyLoader inline_loader(dataset, options);
  EXPECT_EQ(inline_loader.batches_per_epoch(),
            4);  // 9 studies, the last incomplete batch dropped
  const auto reference = run_epoch(inline_loader, dataset.normalization(), 1);
  ASSERT_EQ(reference.size(), 4u);
  for (const auto& codes : reference)
    EXPECT_EQ(codes.size(), 8u);  // 2 studies × 4 scans

  options.workers = 3;
  StudyLoader threaded(dataset, options);
  EXPECT_EQ(run_epoch(threaded, dataset.normalization(), 1), reference);
  const auto resumed = run_epoch(threaded, dataset.normalization(), 1, 2);
  EXPECT_EQ(resumed, std::vector<std::vector<int>>(reference.begin() + 2, reference.end()));
  EXPECT_NE(run_epoch(threaded, dataset.normalization(), 2), reference);
}

TEST(StudyLoader, TextsFollowTheReportOptions) {
  TempDir dir;
  StudyDataset dataset({{make_cache(dir, "m", 2, 1)}}, "");
  LoaderOptions options;
  options.batch_size = 2;
  options.shuffle = false;
  options.report.mode = text::TextProcess::kSentenceAndReport;
  StudyLoader loader(dataset, options);
  loader.start(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->ids, (std::vector<std::string>{"m0", "m1"}));
  ASSERT_EQ(batch->texts[1].size(), 2u);
  EXPECT_EQ(batch->texts[1][0].rfind("This study shows: Finding 1", 0), 0u);
  EXPECT_NE(batch->texts[1][1].find("Finding 1 one."), std::string::npos);
}

TEST(StudyLoader, ABrokenStudyIsSkippedAndCounted) {
  TempDir dir;
  const auto root = make_cache(dir, "m", 4, 1);
  std::filesystem::remove(root + "/scans/m2_0.npy");
  StudyDataset dataset({{root}}, "");
  LoaderOptions options;
  options.batch_size = 4;
  options.shuffle = false;
  StudyLoader loader(dataset, options);
  loader.start(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch);
  EXPECT_EQ(batch->ids, (std::vector<std::string>{"m0", "m1", "m3"}));
  EXPECT_EQ(batch->image.size(0), 3);
  EXPECT_EQ(batch->failed, 1);
  EXPECT_EQ(loader.failed_studies(), 1);
  EXPECT_FALSE(loader.next());
}

}  // namespace
}  // namespace hlip::data

namespace hlip::data {
namespace {

TEST(StudyLoader, ReusesABatchBufferOnceTheBatchIsGone) {
  TempDir dir;
  StudyDataset dataset({{make_cache(dir, "m", 6, 2)}}, "");
  LoaderOptions options;
  options.batch_size = 2;
  options.workers = 0;
  StudyLoader loader(dataset, options);
  loader.start(0);
  const void* first = nullptr;
  {
    const auto batch = loader.next();
    ASSERT_TRUE(batch);
    first = batch->image.data_ptr();
  }
  const auto second = loader.next();
  ASSERT_TRUE(second);
  EXPECT_EQ(second->image.data_ptr(), first);  // the first batch was dropped: its buffer is reused
  const auto third = loader.next();
  ASSERT_TRUE(third);
  EXPECT_NE(third->image.data_ptr(), second->image.data_ptr());  // the second is still held
}

}  // namespace
}  // namespace hlip::data
