#pragma once
// Named state of a LibTorch module (parameters and buffers under the dotted names LibTorch registers, which
// hlip keeps equal to the open_clip / timm / Hugging Face names), and loading it from safetensors by name.
//
//   hlip::model::LoadOptions options;
//   options.strict = false;                                      // report missing/unexpected keys, don't
//   throw options.ignore = {"text.transformer.embeddings.position_ids"}; auto report =
//   hlip::model::load_module(*clip, "model.safetensors", options); spdlog::info("{}", report.summary());
//
//   hlip::model::LoadOptions trunk_only;
//   trunk_only.source_prefix = "visual.trunk.";                  // load a CLIP checkpoint's vision trunk
//   hlip::model::load_module(*trunk, "model.safetensors", trunk_only);

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

namespace hlip::model {

struct LoadOptions {
  // Missing keys (in the module, not the checkpoint) and unexpected keys (in the checkpoint, not the module)
  // are errors; otherwise they are only reported. A shape mismatch is an error either way.
  bool strict = true;
  // When set, only checkpoint keys starting with it are considered, with it removed, so a submodule can be
  // loaded from a whole-model checkpoint. All other checkpoint keys are skipped without being reported.
  std::string source_prefix;
  // Keys (after removing source_prefix) that may be missing or unexpected without error even when strict;
  // '*' matches any run of characters, e.g. "text.transformer.pooler.*".
  std::vector<std::string> ignore;
};

struct LoadReport {
  std::vector<std::string> loaded;      // module keys copied from the checkpoint
  std::vector<std::string> converted;   // those of `loaded` whose dtype differed and was converted
  std::vector<std::string> missing;     // module keys absent from the checkpoint
  std::vector<std::string> unexpected;  // checkpoint keys (source_prefix removed) the module does not have
  std::vector<std::string> ignored;     // missing or unexpected keys matched by LoadOptions::ignore

  // One line for logs: counts, then the missing and unexpected keys (the first few of each).
  std::string summary() const;
};

// Parameters and buffers by dotted name ("blocks.0.attn.qkv.weight"). The tensors are detached but share
// storage with the module, so writing them saves the live weights without a copy.
std::map<std::string, at::Tensor> named_state(const torch::nn::Module& module);

// Copies `state` into the module's parameters and buffers by name, converting dtype and device to the
// module's. Everything is checked before anything is copied: on error the module is unchanged.
LoadReport load_state_dict(torch::nn::Module& module, const std::map<std::string, at::Tensor>& state,
                           const LoadOptions& options = {});

// named_state → write_safetensors, and read_safetensors → load_state_dict (errors name the file).
void save_module(const torch::nn::Module& module, const std::string& path,
                 const std::map<std::string, std::string>& metadata = {});
LoadReport load_module(torch::nn::Module& module, const std::string& path, const LoadOptions& options = {});

}  // namespace hlip::model
