#pragma once
// Batches of studies, built by background threads while the model works, in an order fixed by the seed.
//
//   hlip::data::LoaderOptions options;
//   options.batch_size = 8;
//   options.num_scans = 8;                      // training: exactly 8 scans per study
//   hlip::data::StudyLoader loader(dataset, options);
//   loader.start(/*epoch=*/0);
//   while (auto batch = loader.next()) train_step(batch->image, batch->texts);
//
// Batch b of epoch e depends only on (seed, e, b): the study order, each study's scan selection and its
// report texts are drawn from streams derived from them, whichever worker builds the batch. So a run resumed
// at (e, b) sees exactly the batches the uninterrupted run saw. A study that fails to load (a missing or
// damaged cache file) is logged, counted and left out of its batch; the run goes on.

#include <ATen/ATen.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "hlip/data/dataset.h"
#include "hlip/text/report.h"

namespace hlip::data {

struct LoaderOptions {
  int64_t batch_size = 1;
  int64_t num_scans = 0;  // 0: every scan of each study (evaluation; studies in a batch must agree)
  bool shuffle = true;    // shuffle studies each epoch
  bool drop_last = true;  // leave out the last incomplete batch
  uint64_t seed = 0;
  int workers = 2;            // background threads; 0 builds batches on the calling thread
  int prefetch = 2;           // batches each worker may build ahead
  bool texts = true;          // produce report texts
  std::string report_source;  // "" = the main report
  text::ReportOptions report;
  bool pin_memory = false;  // page-locked batches, for asynchronous copies to a GPU (when CUDA is present)
  // Data-parallel: each epoch's order is cut into global batches of world_size × batch_size studies and
  // this rank gets the rank-th slice of each, so the ranks together see what one process with the global
  // batch would, with the same per-study draws. Without drop_last the last global batch may leave a rank
  // a short or empty batch (empty ones are skipped): fine for evaluation, not for training.
  int rank = 0;
  int world_size = 1;

  // HLIP's evaluation loader: one study per batch with every scan (studies differ in scan count), in data
  // order, nothing left out, no report texts.
  static LoaderOptions one_study_at_a_time(int workers) {
    LoaderOptions options;
    options.batch_size = 1;
    options.num_scans = 0;
    options.shuffle = false;
    options.drop_last = false;
    options.texts = false;
    options.workers = workers;
    options.pin_memory = false;
    return options;
  }
};

struct StudyBatch {
  at::Tensor image;                             // float32 [B, N, 1, D, H, W], normalised
  std::vector<int64_t> indices;                 // dataset index of each study
  std::vector<std::string> ids;                 // study ids
  std::vector<std::vector<std::string>> texts;  // per study: one text, or (sentence, report)
  int64_t epoch = 0;
  int64_t batch = 0;          // index within the epoch
  int64_t failed = 0;         // studies of this batch that could not be loaded
  double wait_seconds = 0.0;  // how long next() waited for this batch
};

class StudyLoader {
 public:
  StudyLoader(const StudyDataset& dataset, LoaderOptions options);
  StudyLoader(const StudyLoader&) = delete;
  StudyLoader& operator=(const StudyLoader&) = delete;
  ~StudyLoader();

  // Batches in an epoch (the order's length over the batch size, rounded as drop_last says).
  int64_t batches_per_epoch() const;
  // Begins epoch `epoch` at batch `first_batch` (a resume position); stops any epoch in progress.
  void start(int64_t epoch, int64_t first_batch = 0);
  // The next batch in order, or nothing at the end of the epoch. A batch whose every study failed is
  // skipped (and counted).
  std::optional<StudyBatch> next();
  // Studies that failed to load since construction.
  int64_t failed_studies() const;

  // Builds batch `batch` of `epoch` on the calling thread (what the workers run).
  StudyBatch build_batch(int64_t epoch, int64_t batch, const std::vector<int64_t>& order) const;

 private:
  void stop();
  void worker_loop();
  int64_t batches_in(int64_t studies) const;
  at::Tensor acquire_buffer(at::IntArrayRef sizes) const;

  const StudyDataset& dataset_;
  LoaderOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable ready_;    // a batch was finished
  std::condition_variable advance_;  // the consumer moved on, or stop
  std::vector<std::thread> threads_;
  std::vector<int64_t> order_;
  int64_t epoch_ = 0;
  int64_t next_to_build_ = 0;
  int64_t next_to_return_ = 0;
  int64_t end_ = 0;
  bool stopping_ = false;
  std::map<int64_t, StudyBatch> done_;
  std::map<int64_t, std::string> errors_;  // a batch that threw, by index
  int64_t failed_studies_ = 0;
  mutable std::mutex pool_mutex_;
  mutable std::vector<at::Tensor> pool_;  // batch buffers, reused once no batch refers to them
};

}  // namespace hlip::data
