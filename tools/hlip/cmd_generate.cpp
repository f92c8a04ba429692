// `hlip train-gen`, `hlip generate` and `hlip eval-gen`: report generation on an HLIP model's vision tower
// (docs/generation.md).
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "eval_common.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/eval/embed.h"
#include "hlip/gen/evaluation.h"
#include "hlip/gen/generator.h"
#include "hlip/gen/training.h"
#include "hlip/io/volume.h"

namespace hlip::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

void add_decoding_flags(CLI::App& app, gen::GenerateOptions& options) {
  app.add_option("--beams", options.beams, "Beam width (1: greedy)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--max-new-tokens", options.max_new_tokens, "Generated tokens at most")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--length-penalty", options.length_penalty,
                 "Beam search: score = log-probability / length^penalty (Hugging Face's)")
      ->capture_default_str();
}

}  // namespace

Command train_gen_command() {
  return {
      "train-gen",
      "Train a report (and answer) decoder on an HLIP model's visual tokens, the tower frozen or fine-tuned "
      "(docs/generation.md)",
      [](CLI::App& app) {
        auto options = std::make_shared<gen::GeneratorTrainOptions>();
        auto no_progress = std::make_shared<bool>(false);
        app.add_option("--model", options->model, "The HLIP model folder (vision tower and tokenizer)")
            ->required();
        app.add_option("--train-data", options->train_data, "Prepared caches (or manifests with --preset)")
            ->required();
        app.add_option("--preset", options->preset, "Preprocessing for manifests that are not caches");
        app.add_option("--out", options->out, "The generator folder to write")->required();
        app.add_option("--train-split", options->train_split)->capture_default_str();
        app.add_option("--val-split", options->val_split)->capture_default_str();
        app.add_option("--report-source", options->report_source,
                       "Report source of the manifest to learn (default: the main report)");
        app.add_option("--targets", options->targets,
                       "What to learn: report, qa (answers to the manifest's closed questions, after the "
                       "question) or both")
            ->check(CLI::IsMember({"report", "qa", "both"}))
            ->capture_default_str();
        app.add_option(
               "--vision", options->vision,
               "The vision tower: frozen (tokens computed once) or finetune (trained with the decoder)")
            ->check(CLI::IsMember({"frozen", "finetune"}))
            ->capture_default_str();
        app.add_option("--vision-lr", options->vision_lr, "Peak learning rate of the fine-tuned vision tower")
            ->capture_default_str();
        app.add_option("--num-scans", options->num_scans, "Fine-tuning: scans drawn per study per step")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
        app.add_option("--width", options->width, "Decoder width")->capture_default_str();
        app.add_option("--layers", options->layers, "Decoder layers (self- and cross-attention each)")
            ->capture_default_str();
        app.add_option("--heads", options->heads, "Attention heads")->capture_default_str();
        app.add_option("--max-length", options->max_length, "Decoder positions (reports are truncated)")
            ->capture_default_str();
        app.add_option("--dropout", options->dropout)->capture_default_str();
        app.add_option("--batch-size", options->batch_size)->capture_default_str();
        app.add_option("--epochs", options->epochs)->capture_default_str();
        app.add_option("--lr", options->lr, "Peak learning rate (AdamW, warm-up then cosine)")
            ->capture_default_str();
        app.add_option("--wd", options->wd, "Weight decay")->capture_default_str();
        app.add_option("--warmup", options->warmup, "Warm-up steps")->capture_default_str();
        app.add_option("--seed", options->seed)->capture_default_str();
        app.add_option("--workers", options->workers, "Threads reading studies")->capture_default_str();
        app.add_flag("--no-progress", *no_progress, "Plain log lines instead of a progress bar");
        return [options, no_progress] {
          options->progress = !*no_progress;
          const auto result = gen::train_generator(*options);
          std::cout << fmt::format(
              "trained {} steps on {} examples of {} studies in {:.1f} s; last epoch loss {:.4f}, validation "
              "loss {:.4f}\ngenerator: {}\n",
              result.steps, result.examples, result.studies, result.seconds, result.final_loss,
              result.val_loss, result.out);
          return 0;
        };
      }};
}

Command generate_command() {
  return {
      "generate", "Write a report for one study from raw files with a trained generator", [](CLI::App& app) {
        struct Args {
          std::string model;
          std::vector<std::string> study;
          std::string preset;
          std::string modality = "mri";
          std::string question;
          gen::GenerateOptions decoding;
          bool json = false;
        };
        auto args = std::make_shared<Args>();
        app.add_option("--model", args->model, "A generator folder (hlip train-gen)")->required();
        app.add_option("--study", args->study, "The study's scans: NIfTI / .npy files or a DICOM folder")
            ->required()
            ->expected(1, -1);
        app.add_option("--preset", args->preset,
                       "Preprocessing (default: the HLIP model folder's recorded preset, else the "
                       "modality's)");
        app.add_option("--modality", args->modality)
            ->check(CLI::IsMember({"mri", "ct"}))
            ->capture_default_str();
        app.add_option("--question", args->question,
                       "Answer this closed question instead of writing a report (a generator trained with "
                       "--targets qa or both)");
        add_decoding_flags(app, args->decoding);
        app.add_flag("--json", args->json, "Print JSON");
        return [args] {
          gen::Generator generator = gen::load_generator(args->model);
          const ResolvedPreset preset = resolve_preset(args->preset, generator.hlip_model, args->modality);
          std::vector<io::Volume> volumes;
          for (const std::string& path : args->study)
            volumes.push_back(io::read_volume(path, 0, io::VoxelValues::kCompact));
          const at::Tensor image = eval::study_image_from_volumes(volumes, preset.preset).unsqueeze(0);
          if (!args->question.empty() &&
              !gen::parse_targets(generator.config.value("targets", "report")).answers) {
            throw UsageError(
                fmt::format("--question: {} was trained to write reports only (train-gen "
                            "--targets qa or both answers questions)",
                            args->model));
          }
          const std::string text =
              generator.generate(generator.memory(image), args->decoding, args->question);
          if (args->json) {
            json out = {{"text", text},
                        {"preset", preset.preset.name},
                        {"preset_from", preset.from},
                        {"beams", args->decoding.beams},
                        {"scans", args->study}};
            if (!args->question.empty()) out["question"] = args->question;
            std::cout << out.dump(2) << "\n";
          } else {
            std::cout << text << "\n";
          }
          return 0;
        };
      }};
}

Command eval_gen_command() {
  return {
      "eval-gen",
      "Generate a report for every study of a split and score it: BLEU-1..4, ROUGE-L, finding F1, "
      "against the most-common-report baseline",
      [](CLI::App& app) {
        struct Args {
          std::string model, data, split = "test", train_split = "train", out, preset, findings, targets;
          gen::GenEvalOptions options;
          bool no_progress = false;
        };
        auto args = std::make_shared<Args>();
        app.add_option("--model", args->model, "A generator folder (hlip train-gen)")->required();
        app.add_option("--data", args->data, "A prepared cache or a manifest (.jsonl, needs --preset)")
            ->required();
        app.add_option("--split", args->split, "Split to generate for")->capture_default_str();
        app.add_option("--train-split", args->train_split, "Split whose most common report is the baseline")
            ->capture_default_str();
        app.add_option("--out", args->out, "Folder for results.json and generations.csv")->required();
        app.add_option("--preset", args->preset, "Preprocessing for a manifest");
        app.add_option("--report-source", args->options.report_source,
                       "The references' report source (default: the generator's)");
        app.add_option("--findings", args->findings,
                       "Finding rules, a JSON file (default: rules for hlip synth's labels)");
        app.add_option("--targets", args->targets,
                       "What to score: report, qa (answers to the studies' closed questions) or both "
                       "(default: what the generator was trained on)")
            ->check(CLI::IsMember({"report", "qa", "both"}));
        app.add_option("--max-answer-tokens", args->options.max_answer_tokens, "Answer tokens at most")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
        app.add_option("--workers", args->options.workers, "Threads reading studies")->capture_default_str();
        app.add_flag("--no-progress", args->no_progress, "Hide the progress bar");
        add_decoding_flags(app, args->options.generate);
        return [args] {
          gen::Generator generator = gen::load_generator(args->model);
          gen::GenEvalOptions options = args->options;
          if (!args->findings.empty()) options.rules = gen::read_finding_rules(args->findings);
          if (options.report_source.empty())
            options.report_source = generator.config.value("report_source", "");
          options.targets = gen::parse_targets(
              args->targets.empty() ? generator.config.value("targets", "report") : args->targets);
          options.progress = !args->no_progress;
          const auto preset = dataset_preset(args->data, args->preset, "mri");
          const data::StudyDataset test = split_dataset(args->data, args->split, preset);
          const data::StudyDataset train = split_dataset(args->data, args->train_split, preset);
          gen::GenEvalResult result = gen::evaluate_generation(generator, test, train, options);
          result.results["model"] = args->model;
          result.results["data"] = args->data;
          result.results["split"] = args->split;
          create_directories(args->out);
          const std::string results = (fs::path(args->out) / "results.json").string();
          write_file_atomic(results, result.results.dump(2) + "\n");
          std::vector<std::string> written{results};
          if (options.targets.reports) {
            const std::string table = (fs::path(args->out) / "generations.csv").string();
            std::string csv = "study,reference,generated\n";
            for (size_t i = 0; i < result.ids.size(); ++i)
              csv += fmt::format("{},{},{}\n", csv_field(result.ids[i]), csv_field(result.references[i]),
                                 csv_field(result.generated[i]));
            write_file_atomic(table, csv);
            written.push_back(table);
            const json& g = result.results["generator"];
            const json& b = result.results["baseline"];
            std::cout << fmt::format("{:<22} {:>10} {:>10}\n", "", "generator", "baseline");
            for (const char* key : {"bleu1", "bleu4"})
              std::cout << fmt::format("{:<22} {:>10.4f} {:>10.4f}\n", key, g["bleu"][key].get<double>(),
                                       b["bleu"][key].get<double>());
            std::cout << fmt::format("{:<22} {:>10.4f} {:>10.4f}\n", "rouge_l",
                                     g["rouge_l"]["fmeasure"].get<double>(),
                                     b["rouge_l"]["fmeasure"].get<double>());
            for (const char* key : {"finding_f1_macro", "finding_f1_micro"})
              std::cout << fmt::format("{:<22} {:>10.4f} {:>10.4f}\n", key, g[key].get<double>(),
                                       b[key].get<double>());
            std::cout << fmt::format("{} studies\n", result.ids.size());
          }
          if (options.targets.answers) {
            written.push_back(write_vqa_answers(args->out, result.answers));
            print_vqa_table(result.results["vqa"]);
          }
          std::cout << fmt::format("wrote {}\n", fmt::join(written, ", "));
          return 0;
        };
      }};
}

}  // namespace hlip::cli
