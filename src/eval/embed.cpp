#include "hlip/eval/embed.h"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

#include "hlip/core/error.h"
#include "hlip/core/progress.h"
#include "hlip/data/loader.h"
#include "hlip/eval/retrieval.h"
#include "hlip/io/safetensors.h"
#include "hlip/text/tensors.h"

namespace hlip::eval {

EvalScope::EvalScope(model::HlipClipImpl& model) : model_(model), was_training_(model.is_training()) {
  model_.eval();
}

EvalScope::~EvalScope() {
  model_.train(was_training_);
}

at::Tensor embed_study(model::HlipClipImpl& model, const at::Tensor& image) {
  if (image.dim() != 5) {
    throw Error(
        fmt::format("study image has shape [{}]; expected [N, 1, D, H, W]", fmt::join(image.sizes(), ", ")));
  }
  EvalScope scope(model);
  const auto parameters = model.parameters();
  const at::Tensor& reference = parameters.front();
  const at::Tensor input = image.unsqueeze(0).to(reference.device(), reference.scalar_type());
  return model.encode_image(input).squeeze(0).to(at::kCPU, at::kFloat).contiguous();
}

at::Tensor embed_texts(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                       const std::vector<std::string>& texts, size_t batch) {
  if (batch == 0) throw Error("embed_texts: the batch size must be at least 1");
  EvalScope scope(model);
  const auto options = text::EncodeOptions::up_to_length(model.config().text.context_length);
  const auto parameters = model.parameters();
  const auto device = parameters.front().device();
  std::vector<at::Tensor> parts;
  for (size_t begin = 0; begin < texts.size(); begin += batch) {
    const std::vector<std::string> chunk(
        texts.begin() + static_cast<std::ptrdiff_t>(begin),
        texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), begin + batch)));
    const auto tensors = text::to_tensors(tokenizer.encode_batch(chunk, options));
    parts.push_back(model.encode_text(tensors.input_ids.to(device), tensors.attention_mask.to(device))
                        .to(at::kCPU, at::kFloat));
  }
  if (parts.empty()) return at::empty({0, model.config().embed_dim}, at::kFloat);
  return at::cat(parts).contiguous();
}

at::Tensor study_image_from_volumes(const std::vector<io::Volume>& volumes, const preprocess::Preset& preset,
                                    const data::Normalization& normalization,
                                    std::vector<int64_t>* scans_per_volume) {
  if (volumes.empty()) throw Error("a study needs at least one scan");
  std::vector<at::Tensor> scans;
  std::vector<std::string> names;
  if (scans_per_volume != nullptr) scans_per_volume->clear();
  for (const io::Volume& volume : volumes) {
    auto processed = preprocess::preprocess_volume(volume, preset);
    if (scans_per_volume != nullptr) scans_per_volume->push_back(static_cast<int64_t>(processed.size()));
    for (auto& scan : processed) {
      const std::string name = volume.source_path + (scan.suffix.empty() ? "" : " (" + scan.suffix + ")");
      if (!scans.empty() && scan.data.sizes() != scans.front().sizes()) {
        throw Error(fmt::format("{}: preprocessed to [{}] but {} to [{}]; a study's scans must agree", name,
                                fmt::join(scan.data.sizes(), ", "), names.front(),
                                fmt::join(scans.front().sizes(), ", ")));
      }
      scans.push_back(std::move(scan.data));
      names.push_back(name);
    }
  }
  const at::Tensor stacked = at::stack(scans).unsqueeze(1);  // [N, 1, D, H, W]
  return ((stacked - normalization.mean) / normalization.std).contiguous();
}

at::Tensor study_image_from_files(const std::vector<std::string>& paths, const preprocess::Preset& preset,
                                  const data::Normalization& normalization) {
  std::vector<io::Volume> volumes;
  volumes.reserve(paths.size());
  for (const std::string& path : paths)
    volumes.push_back(io::read_volume(path, 0, io::VoxelValues::kCompact));
  return study_image_from_volumes(volumes, preset, normalization);
}

namespace {

// Every process's embedded rows (their dataset indices in out.indices) → all of them in data order, in every
// process; failures summed. Shares differ in length (failures, the tail), so each is padded to the longest.
void gather_shards(const data::StudyDataset& dataset, const data::Shard& shard, std::vector<at::Tensor>& rows,
                   StudyEmbeddings& out) {
  const int64_t count = static_cast<int64_t>(rows.size());
  at::Tensor header = at::zeros({1, 4}, at::kLong);
  header[0][0] = count;
  header[0][1] = out.failed;
  if (count > 0) {
    header[0][2] = rows.front().size(0);
    header[0][3] = rows.front().size(1);
  }
  const at::Tensor headers = shard.gather(header);
  const int64_t longest = headers.select(1, 0).max().item<int64_t>();
  out.failed = headers.select(1, 1).sum().item<int64_t>();
  const int64_t rows_per_study = headers.select(1, 2).max().item<int64_t>();
  const int64_t dim = headers.select(1, 3).max().item<int64_t>();
  if (longest == 0) return;
  at::Tensor embeddings = at::zeros({longest, rows_per_study, dim}, at::kFloat);
  at::Tensor indices = at::full({longest}, -1, at::kLong);
  for (int64_t k = 0; k < count; ++k) {
    embeddings[k].copy_(rows[static_cast<size_t>(k)]);
    indices[k] = out.indices[static_cast<size_t>(k)];
  }
  const at::Tensor all_embeddings = shard.gather(embeddings);
  const at::Tensor all_indices = shard.gather(indices);
  const at::Tensor valid = all_indices.ge(0).nonzero().squeeze(1);
  const at::Tensor order = all_indices.index_select(0, valid).argsort();
  const at::Tensor kept = valid.index_select(0, order);
  rows.clear();
  out.ids.clear();
  out.indices.clear();
  for (int64_t k = 0; k < kept.size(0); ++k) {
    const int64_t row = kept[k].item<int64_t>();
    const int64_t index = all_indices[row].item<int64_t>();
    rows.push_back(all_embeddings[row]);
    out.indices.push_back(index);
    out.ids.push_back(dataset.study(index).id);
  }
}

}  // namespace

StudyEmbeddings embed_dataset(model::HlipClipImpl& model, const data::StudyDataset& dataset,
                              const EmbedOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  data::LoaderOptions loader_options = data::LoaderOptions::one_study_at_a_time(options.workers);
  const data::Shard& shard = options.shard;
  if (shard.active()) {  // study i goes to process i mod count
    loader_options.rank = shard.rank;
    loader_options.world_size = shard.count;
  }
  data::StudyLoader loader(dataset, loader_options);
  loader.start(0);

  StudyEmbeddings out;
  std::vector<at::Tensor> rows;
  ProgressOptions progress_options;
  if (!options.progress) progress_options.mode = ProgressMode::kOff;
  const int64_t share = (dataset.size() - shard.rank + shard.count - 1) / shard.count;
  Progress progress("embed", share, "studies", progress_options);
  while (auto batch = loader.next()) {
    for (size_t i = 0; i < batch->ids.size(); ++i) {
      rows.push_back(embed_study(model, batch->image[static_cast<int64_t>(i)]));
      out.ids.push_back(batch->ids[i]);
      out.indices.push_back(batch->indices[i]);
    }
    progress.advance(static_cast<int64_t>(batch->ids.size()) + batch->failed);
  }
  progress.finish();
  out.failed = loader.failed_studies();
  if (shard.active()) gather_shards(dataset, shard, rows, out);
  if (rows.empty()) {
    throw Error(fmt::format("none of the {} studies could be embedded ({} failed to load)", dataset.size(),
                            out.failed));
  }
  out.embeddings = at::stack(rows);
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return out;
}

TextEmbeddings embed_reports(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                             const data::StudyDataset& dataset, const std::vector<int64_t>& indices,
                             const std::string& source, size_t batch) {
  TextEmbeddings out;
  for (int64_t index : indices) {
    const data::ManifestStudy& study = dataset.study(index);
    std::string reason;
    std::string text = study_report_text(study, source, &reason);
    if (text.empty()) {
      ++out.skipped[reason];
      continue;
    }
    out.ids.push_back(study.id);
    out.texts.push_back(std::move(text));
  }
  out.embeddings = embed_texts(model, tokenizer, out.texts, batch);
  return out;
}

void write_embeddings(const StudyEmbeddings& embeddings, const std::string& path,
                      std::map<std::string, std::string> metadata, const TextEmbeddings* reports,
                      const TextEmbeddings* texts) {
  metadata["format"] = "pt";
  metadata["studies"] = nlohmann::json(embeddings.ids).dump();
  std::map<std::string, at::Tensor> tensors = {{"image_embeds", embeddings.embeddings}};
  if (reports != nullptr) {
    tensors["report_embeds"] = reports->embeddings;
    metadata["report_studies"] = nlohmann::json(reports->ids).dump();
    metadata["report_skipped"] = nlohmann::json(reports->skipped).dump();
  }
  if (texts != nullptr) {
    tensors["text_embeds"] = texts->embeddings;
    metadata["text_ids"] = nlohmann::json(texts->ids).dump();
    metadata["texts"] = nlohmann::json(texts->texts).dump();
  }
  io::write_safetensors(path, tensors, metadata);
}

}  // namespace hlip::eval
