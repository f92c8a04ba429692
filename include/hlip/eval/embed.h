#pragma once
// Image embeddings of studies: a whole split of a dataset (`hlip embed`, zero-shot evaluation), or one study
// from raw files or in-memory volumes (single-study inference in a pipeline or PACS service).
//
//   hlip::model::HlipClip clip = hlip::model::load_model_dir("model");
//   hlip::data::StudyDataset test({{"cache"}}, "test");
//   hlip::eval::StudyEmbeddings all = hlip::eval::embed_dataset(*clip, test);   // all.embeddings [S, P, E]
//   hlip::eval::write_embeddings(all, "embeddings.safetensors", {{"model", "model"}});
//
//   auto preset = hlip::preprocess::preset_by_name("mri-brain");
//   at::Tensor image = hlip::eval::study_image_from_files({"t1.nii.gz", "flair.nii.gz"}, preset);
//   at::Tensor embedding = hlip::eval::embed_study(*clip, image);               // [P, E]
//
// Every entry point runs the model in eval mode without gradients and restores its training mode after.

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hlip/data/dataset.h"
#include "hlip/data/shard.h"
#include "hlip/io/volume.h"
#include "hlip/model/clip.h"
#include "hlip/preprocess/preset.h"
#include "hlip/text/tokenizer.h"

namespace hlip::eval {

// Sets a model to eval mode and disables gradients for its lifetime; restores the training mode after.
class EvalScope {
 public:
  explicit EvalScope(model::HlipClipImpl& model);
  ~EvalScope();
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  model::HlipClipImpl& model_;
  bool was_training_;
  c10::NoGradGuard no_grad_;
};

// One study, float32 [N, 1, D, H, W] normalised (as StudyDataset::load_image gives it) -> float32 CPU [P, E],
// unit rows. The image goes to the model's device and dtype.
at::Tensor embed_study(model::HlipClipImpl& model, const at::Tensor& image);

// Raw scans -> the model's input [N, 1, D, H, W]: each volume through preprocess_volume (a CT preset with
// several windows gives one scan per window) and the normalisation. Scans of different shapes are an
// hlip::Error naming both. `scans_per_volume`, where given, receives how many scans each volume gave.
at::Tensor study_image_from_volumes(const std::vector<io::Volume>& volumes, const preprocess::Preset& preset,
                                    const data::Normalization& normalization = {},
                                    std::vector<int64_t>* scans_per_volume = nullptr);
// The same from files read with io::read_volume (NIfTI, .npy, a DICOM file or folder).
at::Tensor study_image_from_files(const std::vector<std::string>& paths, const preprocess::Preset& preset,
                                  const data::Normalization& normalization = {});

// Unit-length text embeddings float32 CPU [T, E] of `texts`, tokenized at the model's context length (longer
// texts are truncated) and encoded `batch` texts per forward, in eval mode without gradients.
at::Tensor embed_texts(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                       const std::vector<std::string>& texts, size_t batch = 64);

struct EmbedOptions {
  int workers = 1;        // loader threads reading studies ahead
  bool progress = false;  // a progress bar on stderr
  data::Shard shard;      // data-parallel: this process embeds its share; every process gets the whole result
};

struct StudyEmbeddings {
  std::vector<std::string> ids;  // the studies embedded, in data order
  std::vector<int64_t> indices;  // their dataset indices
  at::Tensor embeddings;         // float32 [S, P, E], unit rows
  int64_t failed = 0;            // studies that could not be loaded (logged by the loader)
  double seconds = 0.0;
};

// Every study of `dataset` in order, batch size 1 and all scans (HLIP's evaluation loaders). With an active
// `options.shard`, each process embeds its share and the shares are gathered: the same result in every
// process, in data order.
StudyEmbeddings embed_dataset(model::HlipClipImpl& model, const data::StudyDataset& dataset,
                              const EmbedOptions& options = {});

// Text embeddings with an id per row: study reports, or a list of prompts.
struct TextEmbeddings {
  std::vector<std::string> ids;            // one per row
  std::vector<std::string> texts;          // the texts embedded, one per row
  at::Tensor embeddings;                   // float32 [T, E], unit rows
  std::map<std::string, int64_t> skipped;  // reports: studies left out, by reason ("no report", ...)
};

// The report of each study `indices` names in `dataset` (study_report_text of `source`, "" = the main
// report), ids the study ids; studies without one are left out and counted in `skipped`.
TextEmbeddings embed_reports(model::HlipClipImpl& model, const text::Tokenizer& tokenizer,
                             const data::StudyDataset& dataset, const std::vector<int64_t>& indices,
                             const std::string& source = "", size_t batch = 64);

// A safetensors file with "image_embeds" [S, P, E]; the metadata holds "studies" (the ids as a JSON array),
// "format": "pt" and `metadata`. Where given, `reports` adds "report_embeds" [R, E] with "report_studies"
// (ids) and "report_skipped" ({reason: count}), and `texts` adds "text_embeds" [T, E] with "text_ids" and
// "texts" (JSON arrays; report texts are not copied into the metadata, the manifest has them).
void write_embeddings(const StudyEmbeddings& embeddings, const std::string& path,
                      std::map<std::string, std::string> metadata = {},
                      const TextEmbeddings* reports = nullptr, const TextEmbeddings* texts = nullptr);

}  // namespace hlip::eval
