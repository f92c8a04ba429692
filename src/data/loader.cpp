#include "hlip/data/loader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>

#include "hlip/core/error.h"
#include "hlip/core/runtime.h"

namespace hlip::data {
namespace {

// The stream of study `position` in epoch `epoch`: scan selection and report
// texts.
uint64_t study_seed(uint64_t seed, int64_t epoch, int64_t position) {
  return derive_seed(derive_seed(derive_seed(seed, name_hash("study")), static_cast<uint64_t>(epoch)),
                     static_cast<uint64_t>(position));
}

}  // namespace

StudyLoader::StudyLoader(const StudyDataset& dataset, LoaderOptions options)
    : dataset_(dataset), options_(std::move(options)) {
  if (options_.batch_size < 1) {
    throw UsageError(fmt::format("batch size {} must be at least 1", options_.batch_size));
  }
  if (options_.num_scans < 0) throw UsageError(fmt::format("num scans {} is negative", options_.num_scans));
  if (options_.workers < 0) throw UsageError(fmt::format("workers {} is negative", options_.workers));
  if (options_.prefetch < 1) options_.prefetch = 1;
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    throw UsageError(
        fmt::format("loader rank {} of world size {} is out of range", options_.rank, options_.world_size));
  }
}

int64_t StudyLoader::batches_in(int64_t studies) const {
  const int64_t global = options_.batch_size * options_.world_size;
  return options_.drop_last ? studies / global : (studies + global - 1) / global;
}

StudyLoader::~StudyLoader() {
  stop();
}

int64_t StudyLoader::batches_per_epoch() const {
  // The order's length varies by epoch only when a source has a fractional
  // weight; the expected length is what a schedule needs, the real one ends
  // each epoch.
  double expected = 0;
  for (int64_t i = 0; i < dataset_.size(); ++i) {
    expected += dataset_.sources()[static_cast<size_t>(dataset_.entry(i).source)].weight;
  }
  const auto studies = static_cast<int64_t>(std::llround(expected));
  return batches_in(studies);
}

at::Tensor StudyLoader::acquire_buffer(at::IntArrayRef sizes) const {
  // A buffer is free again once the batch that carried it (and every view of it) is gone: then the pool
  // holds the only reference to its storage. Reusing it avoids faulting in fresh pages for every batch.
  std::lock_guard lock(pool_mutex_);
  for (const auto& buffer : pool_) {
    if (buffer.sizes() == sizes && buffer.use_count() == 1 && buffer.storage().use_count() == 1)
      return buffer;
  }
  at::Tensor buffer = at::empty(sizes, at::kFloat);
  const auto limit = static_cast<size_t>(std::max(1, options_.workers) * options_.prefetch + 2);
  if (pool_.size() >= limit) pool_.erase(pool_.begin());
  pool_.push_back(buffer);
  return buffer;
}

StudyBatch StudyLoader::build_batch(int64_t epoch, int64_t batch, const std::vector<int64_t>& order) const {
  thread_local at::Tensor scratch;  // one scan as stored, reused by this thread
  StudyBatch out;
  out.epoch = epoch;
  out.batch = batch;
  const int64_t begin = (batch * options_.world_size + options_.rank) * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(order.size()));
  at::Tensor buffer;
  std::vector<int64_t> filled;  // slots that hold a study
  for (int64_t position = begin; position < end; ++position) {
    const int64_t index = order[static_cast<size_t>(position)];
    const ManifestStudy& study = dataset_.study(index);
    Random rng(study_seed(options_.seed, epoch, position));
    try {
      const auto scans = select_scans(static_cast<int64_t>(study.scans.size()), options_.num_scans, rng);
      std::vector<int64_t> sizes = dataset_.scan_shape(index, scans.front());
      sizes.insert(sizes.begin(), {static_cast<int64_t>(scans.size()), 1});
      if (!buffer.defined()) {
        sizes.insert(sizes.begin(), end - begin);
        buffer = acquire_buffer(sizes);
      } else if (buffer[0].sizes() != at::IntArrayRef(sizes)) {
        throw Error(
            fmt::format("image {} differs from the batch's {}; evaluation batches of studies with "
                        "different scan counts or sizes need batch size 1",
                        c10::str(at::IntArrayRef(sizes)), c10::str(buffer[0].sizes())));
      }
      at::Tensor slot = buffer[static_cast<int64_t>(filled.size())];
      dataset_.load_image_into(index, scans, slot, scratch);
      std::vector<std::string> texts;
      if (options_.texts) {
        texts = text::process_report(report_sentences(study, options_.report_source), options_.report, rng);
      }
      filled.push_back(position);
      out.indices.push_back(index);
      out.ids.push_back(study.id);
      out.texts.push_back(std::move(texts));
    } catch (const std::exception& error) {
      spdlog::warn("study {} skipped: {}", study.id, error.what());
      ++out.failed;
    }
  }
  if (!filled.empty()) {
    const auto count = static_cast<int64_t>(filled.size());
    out.image = count == buffer.size(0) ? buffer : buffer.slice(0, 0, count).clone();
#ifdef HLIP_WITH_CUDA
    if (options_.pin_memory && at::hasCUDA()) out.image = out.image.pin_memory();
#endif
  }
  return out;
}

void StudyLoader::start(int64_t epoch, int64_t first_batch) {
  stop();
  std::vector<int64_t> order = dataset_.epoch_order(options_.seed, epoch, options_.shuffle);
  const auto studies = static_cast<int64_t>(order.size());
  const int64_t batches = batches_in(studies);
  std::lock_guard lock(mutex_);
  order_ = std::move(order);
  epoch_ = epoch;
  end_ = batches;
  next_to_build_ = next_to_return_ = std::clamp<int64_t>(first_batch, 0, batches);
  stopping_ = false;
  done_.clear();
  errors_.clear();
  for (int w = 0; w < options_.workers; ++w)
    threads_.emplace_back([this] { worker_loop(); });
}

void StudyLoader::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  advance_.notify_all();
  for (auto& thread : threads_)
    thread.join();
  threads_.clear();
}

void StudyLoader::worker_loop() {
  // Batches are file reads and copies; several workers each using LibTorch's
  // whole thread pool would fight the training step for the cores.
  use_one_thread_in_this_worker();
  std::unique_lock lock(mutex_);
  while (true) {
    const int64_t ahead = static_cast<int64_t>(options_.workers) * options_.prefetch;
    advance_.wait(lock, [&] {
      return stopping_ || next_to_build_ >= end_ || next_to_build_ < next_to_return_ + ahead;
    });
    if (stopping_ || next_to_build_ >= end_) return;
    const int64_t batch = next_to_build_++;
    const int64_t epoch = epoch_;
    lock.unlock();
    std::optional<StudyBatch> built;
    std::string error;
    try {
      built = build_batch(epoch, batch, order_);
    } catch (const std::exception& e) {
      error = e.what();
    }
    lock.lock();
    if (built) {
      done_.emplace(batch, std::move(*built));
    } else {
      errors_.emplace(batch, error);
    }
    ready_.notify_all();
  }
}

std::optional<StudyBatch> StudyLoader::next() {
  const auto started = std::chrono::steady_clock::now();
  while (true) {
    std::unique_lock lock(mutex_);
    if (next_to_return_ >= end_) return std::nullopt;
    const int64_t batch = next_to_return_;
    std::optional<StudyBatch> out;
    if (threads_.empty()) {
      lock.unlock();
      out = build_batch(epoch_, batch, order_);
      lock.lock();
    } else {
      ready_.wait(lock, [&] { return done_.count(batch) > 0 || errors_.count(batch) > 0; });
      if (auto error = errors_.find(batch); error != errors_.end()) {
        throw Error(fmt::format("batch {} of epoch {}: {}", batch, epoch_, error->second));
      }
      out = std::move(done_.at(batch));
      done_.erase(batch);
    }
    ++next_to_return_;
    failed_studies_ += out->failed;
    lock.unlock();
    advance_.notify_all();
    if (out->indices.empty()) continue;  // every study of the batch failed: logged and counted
    out->wait_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
  }
}

int64_t StudyLoader::failed_studies() const {
  std::lock_guard lock(mutex_);
  return failed_studies_;
}

}  // namespace hlip::data
