#pragma once
// A model folder for end-to-end tests: the checked-in tiny-cls-scanstudy reference weights (untrained,
// 8×24×40 input, E = 24, one image row) as two shards, and a word-level vocabulary within the case's 64 ids
// ([PAD] 0, [CLS] 2, [SEP] 3 as the case's config says).

#include <filesystem>
#include <fstream>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "safetensors_file.h"

namespace hlip::test {

inline void assemble_tiny_model(const std::filesystem::path& folder) {
  namespace fs = std::filesystem;
  using json = nlohmann::json;
  const std::string data = HLIP_TEST_DATA_DIR;
  const std::string name = "tiny-cls-scanstudy";
  fs::create_directories(folder / "tokenizer");
  fs::copy_file(data + "/clip/" + name + "/open_clip_config.json", folder / "open_clip_config.json");
  const std::pair<std::string, std::string> shards[] = {
      {"model-00001-of-00002.safetensors", data + "/vision/" + name + "/model.safetensors"},
      {"model-00002-of-00002.safetensors", data + "/clip/" + name + "/text.safetensors"}};
  json map = json::object();
  for (const auto& [shard, source] : shards) {
    fs::create_symlink(source, folder / shard);
    const json header = read_safetensors_header(source);
    for (const auto& [key, info] : header.items()) {
      if (key != "__metadata__") map[key] = shard;
    }
  }
  std::ofstream(folder / "model.safetensors.index.json") << json{{"weight_map", map}}.dump(1);
  std::ofstream vocab(folder / "tokenizer" / "vocab.txt");
  for (const char* token :
       {"[PAD]",  "[UNK]", "[CLS]",    "[SEP]",      "[MASK]",     "this",         "study",
        "shows",  ":",     ".",        "no",         "acute",      "intracranial", "abnormality",
        "normal", "mri",   "of",       "the",        "brain",      "infarct",      "stroke",
        "glioma", "glial", "neoplasm", "meningioma", "metastasis", "metastatic",   "disease"})
    vocab << token << "\n";
}

}  // namespace hlip::test
