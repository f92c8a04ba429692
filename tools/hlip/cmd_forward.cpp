// `hlip forward --model DIR --input IN.safetensors --out OUT.safetensors`: runs a model in evaluation mode in
// float32 and writes every output of the model spec's section 9 that it produces (vision trace, features,
// embeddings, text tower, logits; alt.* for image_alt), the tensor-by-tensor check for anyone porting
// weights.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/io/safetensors.h"
#include "hlip/model/clip.h"

namespace hlip::cli {
namespace {

struct ForwardArgs {
  std::string model;
  std::string input;
  std::string out;
  std::string config;
  std::string attention = "fused";
  bool non_strict = false;
  uint64_t seed = 0;
};

model::HlipClip build_model(const ForwardArgs& args) {
  const auto kernel =
      args.attention == "plain" ? model::AttentionKernel::kPlain : model::AttentionKernel::kFused;
  std::error_code error;
  if (std::filesystem::is_directory(args.model, error)) {
    model::ModelDirOptions options;
    options.config = args.config;
    options.strict = !args.non_strict;
    options.adjust_config = [kernel](model::ClipConfig& config) { config.vision.attention_kernel = kernel; };
    model::LoadReport report;
    model::HlipClip clip = model::load_model_dir(args.model, options, &report);
    std::cout << fmt::format("model {}: {}\n", args.model, report.summary());
    return clip;
  }
  if (!args.config.empty()) {
    throw UsageError(fmt::format("--config goes with a model folder; \"{}\" is not a folder", args.model));
  }
  // A config name or JSON file: a freshly initialised model, for shapes and tensor names.
  const auto names = model::known_model_configs();
  if (!std::filesystem::is_regular_file(args.model, error) &&
      std::find(names.begin(), names.end(), args.model) == names.end()) {
    throw Error(fmt::format("--model {}: no such model folder, config file or config name (known: {})",
                            args.model, fmt::join(names, ", ")));
  }
  model::ClipConfig config = model::resolve_clip_config(args.model);
  config.vision.attention_kernel = kernel;
  at::manual_seed(args.seed);
  std::cerr << fmt::format("hlip forward: \"{}\" is a config, not a model folder: random weights (seed {})\n",
                           args.model, args.seed);
  return model::HlipClip(config);
}

}  // namespace

Command forward_command() {
  return {"forward", "Run a model in evaluation mode and write every named intermediate output",
          [](CLI::App& app) {
            auto args = std::make_shared<ForwardArgs>();
            app.add_option(
                   "--model", args->model,
                   "Model folder (open_clip_config.json + model.safetensors), or a config name or JSON "
                   "file for random weights")
                ->required();
            app.add_option("--input", args->input,
                           "safetensors with image [B, N, 1, D, H, W] and/or input_ids [T, L]; optional "
                           "image_alt, attention_mask")
                ->required();
            app.add_option("--out", args->out, "Output safetensors file")->required();
            app.add_option(
                "--config", args->config,
                "Config name or JSON file for a folder without open_clip_config.json (or to replace it)");
            app.add_option("--attention", args->attention, "Attention kernel: fused, or plain (written out)")
                ->check(CLI::IsMember({"fused", "plain"}));
            app.add_flag("--non-strict", args->non_strict,
                         "Load even with missing or unexpected keys (listed; missing ones stay random)");
            app.add_option("--seed", args->seed, "Seed of the random weights when --model is a config");
            return [args] {
              model::HlipClip clip = build_model(*args);
              clip->eval();
              const io::SafetensorsFile input = io::read_safetensors(args->input);
              std::map<std::string, at::Tensor> outputs;
              try {
                outputs = model::forward_outputs(*clip, input.tensors);
              } catch (const Error& e) {
                throw Error(fmt::format("{}: {}", args->input, e.what()));
              }
              io::write_safetensors(args->out, outputs,
                                    {{"format", "pt"},
                                     {"generator", "hlip forward"},
                                     {"model", args->model},
                                     {"input", args->input}});
              for (const auto& [name, tensor] : outputs)
                std::cout << fmt::format("{} [{}]\n", name, fmt::join(tensor.sizes(), ", "));
              std::cout << fmt::format("wrote {} tensors to {}\n", outputs.size(), args->out);
              return 0;
            };
          }};
}

}  // namespace hlip::cli
