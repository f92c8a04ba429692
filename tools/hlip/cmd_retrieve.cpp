// `hlip retrieve`: image-report retrieval on a split (recall@K, mean and median rank, both directions).
// docs/zeroshot.md.
#include <fmt/format.h>

#include <filesystem>
#include <iostream>
#include <memory>

#include "command.h"
#include "eval_common.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/eval/retrieval.h"

namespace hlip::cli {
namespace {

namespace fs = std::filesystem;

struct RetrieveArgs {
  std::string model;
  std::string device = "cpu";
  std::string tokenizer;
  std::string data;
  std::string split = "test";
  std::string report_source;
  std::string out;
  std::string preset;
  std::string modality;
  std::string ties = "pessimistic";
  int64_t image_embedding = -1;
  int workers = 2;
  bool no_progress = false;
};

int run_retrieve(const RetrieveArgs& args) {
  const data::StudyDataset dataset =
      split_dataset(args.data, args.split,
                    dataset_preset(args.data, args.preset, args.modality.empty() ? "mri" : args.modality));
  model::HlipClip clip = load_model(args.model, args.device);
  const text::Tokenizer tokenizer = load_tokenizer(args.tokenizer, args.model);
  eval::RetrievalOptions options;
  options.report_source = args.report_source;
  options.ties = eval::parse_tie_rule(args.ties);
  options.image_embedding = args.image_embedding;
  options.workers = args.workers;
  options.progress = !args.no_progress;
  options.model = args.model;
  options.data = args.data;
  options.split = args.split;
  const eval::RetrievalResult result = eval::evaluate_retrieval(*clip, tokenizer, dataset, options);
  std::cout << eval::format_retrieval_table(result);
  if (!args.out.empty()) {
    const auto folder = fs::path(args.out).parent_path();
    if (!folder.empty()) create_directories(folder.string());
    write_file_atomic(args.out, eval::retrieval_json(result).dump(2) + "\n");
    std::cout << fmt::format("wrote {} ({:.1f} s)\n", args.out, result.seconds);
  }
  return 0;
}

}  // namespace

Command retrieve_command() {
  return {
      "retrieve", "Image-report retrieval on a split: recall@1/5/10 and ranks, both directions",
      [](CLI::App& app) {
        auto args = std::make_shared<RetrieveArgs>();
        add_model_and_data_flags(app, args->model, args->tokenizer, args->data);
        app.add_option("--split", args->split, "Split to evaluate (\"all\": every study)")
            ->capture_default_str();
        app.add_option("--report-source", args->report_source,
                       "Report source of the manifest's \"reports\" (default: the main report)");
        app.add_option("--out", args->out, "results JSON file to write");
        app.add_option("--preset", args->preset, "Preprocessing for a manifest: a preset name or TOML file");
        app.add_option("--modality", args->modality, "mri or ct, for a cache folder given as --preset")
            ->check(CLI::IsMember({"mri", "ct"}));
        app.add_option("--ties", args->ties,
                       "Rank of a candidate as similar as the match: pessimistic (ahead of it) or "
                       "optimistic")
            ->check(CLI::IsMember({"pessimistic", "optimistic"}))
            ->capture_default_str();
        app.add_option("--image-embedding", args->image_embedding,
                       "Image row matched with reports (default: 1, the report row, for dual models; else 0)")
            ->check(CLI::NonNegativeNumber);
        app.add_option("--workers", args->workers, "Threads reading studies ahead")->capture_default_str();
        add_device_flag(app, args->device);
        app.add_flag("--no-progress", args->no_progress, "Hide the progress bar");
        return [args] { return run_retrieve(*args); };
      }};
}

}  // namespace hlip::cli
