// `hlip zeroshot`: zero-shot classification of a split with a task file (results.json, scores.csv and a
// table), or of one study read from raw files (a ranked table of classes). `hlip embed`: image embeddings of
// a split as safetensors. docs/zeroshot.md.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "command.h"
#include "eval_common.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/data/dataset.h"
#include "hlip/eval/embed.h"
#include "hlip/eval/explain.h"
#include "hlip/eval/vqa.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/io/nifti.h"
#include "hlip/model/clip.h"
#include "hlip/preprocess/preset.h"
#include "hlip/text/tokenizer.h"
#include "hlip/train/distributed.h"

namespace hlip::cli {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct ZeroShotArgs {
  std::string model;
  std::string device = "cpu";
  std::string tokenizer;
  std::string data;
  std::string split = "test";
  std::string task;
  std::string classes;
  std::vector<std::string> templates;
  std::string out;
  std::vector<std::string> study;
  std::string preset;
  std::string modality;
  bool json = false;
  std::string explain;
  std::string explain_class;
  std::string precision = "fp32";
  bool reports = false;
  std::string report_source;
  std::string texts;
  int bootstrap = -1;
  int64_t seed = -1;
  int workers = 2;
  bool no_progress = false;
  int64_t nproc_per_node = 1;
  double dist_timeout = 1800;
};

// --nproc-per-node N, or torchrun's / Slurm's variables: several processes share the split's studies and
// rank 0 writes the result (docs/distributed.md).
void add_parallel_flags(CLI::App& app, ZeroShotArgs& args) {
  app.add_option("--nproc-per-node", args.nproc_per_node,
                 "Start N local processes that share the studies (torchrun's or Slurm's variables, when set, "
                 "say the job's shape instead)")
      ->check(CLI::PositiveNumber);
  app.add_option("--dist-timeout", args.dist_timeout, "Seconds to wait for a peer process")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
}

struct Sharding {
  std::unique_ptr<train::ProcessGroup> group;
  data::Shard shard;
  bool root() const { return !group || group->rank() == 0; }
};

Sharding connect_shards(const ZeroShotArgs& args) {
  Sharding out;
  const train::DistEnv env = train::dist_env_from_environment();
  if (!env.distributed()) return out;
  out.group = train::ProcessGroup::connect(
      env, std::chrono::milliseconds(static_cast<int64_t>(args.dist_timeout * 1000)));
  train::ProcessGroup* group = out.group.get();
  out.shard = {group->rank(), group->world_size(),
               [group](const at::Tensor& t) { return group->all_gather(t); }};
  return out;
}

eval::ZeroShotTask make_task(const ZeroShotArgs& args) {
  if (args.task.empty() == args.classes.empty()) throw UsageError("give one of --task and --classes");
  if (!args.task.empty()) {
    auto task = eval::load_task(args.task);
    if (!args.templates.empty()) eval::set_templates(task, args.templates);
    return task;
  }
  const auto classes = split_list(args.classes);
  if (classes.empty()) throw UsageError(fmt::format("--classes \"{}\" names no class", args.classes));
  return args.templates.empty() ? eval::task_from_classes(classes)
                                : eval::task_from_classes(classes, args.templates);
}

// The index of --explain-class in the task, or -1 (the top-ranked class) when not given.
int64_t explain_class_index(const eval::ZeroShotTask& task, const std::string& name) {
  if (name.empty()) return -1;
  std::vector<std::string> names;
  for (size_t c = 0; c < task.classes.size(); ++c) {
    if (task.classes[c].name == name) return static_cast<int64_t>(c);
    names.push_back(task.classes[c].name);
  }
  throw UsageError(fmt::format("--explain-class \"{}\": not a class of task {} (classes: {})", name,
                               task.name, fmt::join(names, ", ")));
}

// "dir/t1.nii.gz" -> "t1", "dicom/series1/" -> "series1".
std::string scan_stem(const std::string& path) {
  fs::path p(path);
  if (!p.has_filename()) p = p.parent_path();
  std::string name = p.filename().string();
  for (const char* extension : {".nii.gz", ".nii", ".npy", ".dcm"}) {
    const std::string ext = extension;
    if (name.size() > ext.size() && name.compare(name.size() - ext.size(), ext.size(), ext) == 0) {
      name.resize(name.size() - ext.size());
      break;
    }
  }
  return name.empty() ? "scan" : name;
}

json affine_json(const io::Affine& affine) {
  json rows = json::array();
  for (const auto& row : affine)
    rows.push_back(row);
  return rows;
}

// Writes DIR/<stem>_relevance.nii.gz per input file (on the file's own grid, with its affine) and
// DIR/explain.json; returns the JSON.
json write_explanation(const eval::StudyExplanation& explanation, const std::vector<io::Volume>& volumes,
                       const ZeroShotArgs& args, const eval::ZeroShotTask& task,
                       const ResolvedPreset& preset) {
  create_directories(args.explain);
  const int64_t c = explanation.relevance.class_index;
  const std::string class_name = task.classes[static_cast<size_t>(c)].name;
  json files = json::array();
  std::set<std::string> used;
  for (size_t v = 0; v < volumes.size(); ++v) {
    std::string stem = scan_stem(args.study[v]);
    if (!used.insert(stem).second) stem += fmt::format("_{}", v + 1);
    used.insert(stem);
    const std::string path = (fs::path(args.explain) / (stem + "_relevance.nii.gz")).string();
    io::NiftiWriteOptions options;
    options.description = "hlip relevance: " + class_name;
    io::write_nifti(path, explanation.maps[v], volumes[v].affine, options);
    const at::Tensor map = explanation.maps[v];
    files.push_back({{"input", args.study[v]},
                     {"relevance", path},
                     {"shape", map.sizes().vec()},
                     {"model_scans", explanation.scans_per_volume[v]},
                     {"min", map.min().item<double>()},
                     {"max", map.max().item<double>()},
                     {"model_voxel_to_world", affine_json(explanation.model_to_world[v])}});
  }
  const json out = {
      {"task", task.name},
      {"class", class_name},
      {"class_index", c},
      {"score", explanation.relevance.scores[c].item<double>()},
      {"method",
       "gradient x input: d score / d x times x, x the preprocessed scan in [0, 1] before normalisation "
       "(baseline 0), per model voxel; signed"},
      {"grid",
       "each map resampled (trilinear) from the model grid onto its input's voxel grid and written with the "
       "input's affine; the sum over a CT volume's windows; 0 where preprocessing cropped the input"},
      {"preset", preprocess::to_json(preset.preset)},
      {"files", files}};
  write_file_atomic((fs::path(args.explain) / "explain.json").string(), out.dump(2) + "\n");
  return out;
}

int run_single_study(const ZeroShotArgs& args) {
  if (!args.data.empty() || !args.out.empty()) {
    throw UsageError("--study scores one study: --data and --out are for a whole split");
  }
  if (!args.explain_class.empty() && args.explain.empty()) {
    throw UsageError("--explain-class goes with --explain OUT_DIR");
  }
  const eval::ZeroShotTask task = make_task(args);
  const int64_t explain_index = explain_class_index(task, args.explain_class);
  const std::string modality =
      !args.modality.empty() ? args.modality : (task.modality.empty() ? "mri" : task.modality);
  const ResolvedPreset preset = resolve_preset(args.preset, args.model, modality);
  std::cerr << fmt::format("preset {} (from {})\n", preset.preset.name, preset.from);
  model::HlipClip clip = load_model(args.model, args.device);
  const text::Tokenizer tokenizer = load_tokenizer(args.tokenizer, args.model);
  std::vector<io::Volume> volumes;
  for (const std::string& path : args.study)
    volumes.push_back(io::read_volume(path, 0, io::VoxelValues::kCompact));
  const eval::ZeroShotClassifier classifier(*clip, tokenizer, task);
  at::Tensor embedding;  // [1, P, E]
  int64_t scans = 0;
  std::optional<json> explained;
  if (args.explain.empty()) {
    const at::Tensor image = eval::study_image_from_volumes(volumes, preset.preset);
    embedding = eval::embed_study(*clip, image).unsqueeze(0);
    scans = image.size(0);
  } else {
    const eval::StudyExplanation explanation =
        eval::explain_study(*clip, classifier, volumes, preset.preset, explain_index);
    embedding = explanation.relevance.features;
    scans = explanation.relevance.map.size(0);
    explained = write_explanation(explanation, volumes, args, task, preset);
  }
  const at::Tensor scores = classifier.score(embedding)[0].contiguous();
  const at::Tensor cosines = classifier.cosine(embedding)[0].contiguous();
  const auto k = static_cast<int64_t>(task.classes.size());
  std::vector<int64_t> order(static_cast<size_t>(k));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[a].item<double>() > scores[b].item<double>(); });
  const std::string score_name = task.mode == eval::ScoringMode::kPositive ? "cosine" : "probability";
  if (args.json) {
    json ranked = json::array();
    for (int64_t c : order) {
      ranked.push_back({{"class", task.classes[static_cast<size_t>(c)].name},
                        {"score", scores[c].item<double>()},
                        {"cosine", cosines[c].item<double>()}});
    }
    const json out = {{"study", args.study},
                      {"task", task.name},
                      {"mode", eval::to_string(task.mode)},
                      {"score", score_name},
                      {"preset", preprocess::to_json(preset.preset)},
                      {"scans", scans},
                      {"logit_scale", classifier.logit_scale()},
                      {"classes", ranked}};
    json printed = out;
    if (explained) printed["explain"] = *explained;
    std::cout << printed.dump(2) << "\n";
    return 0;
  }
  size_t width = 5;
  for (const auto& c : task.classes)
    width = std::max(width, c.name.size());
  std::cout << fmt::format("task {} ({}), {} scan(s) after preset {}\n", task.name,
                           eval::to_string(task.mode), scans, preset.preset.name);
  std::cout << fmt::format("{:>4}  {:<{}}  {:>11}  {:>8}\n", "rank", "class", width, score_name, "cosine");
  for (size_t rank = 0; rank < order.size(); ++rank) {
    const int64_t c = order[rank];
    std::cout << fmt::format("{:>4}  {:<{}}  {:>11.4f}  {:>8.4f}\n", rank + 1,
                             task.classes[static_cast<size_t>(c)].name, width, scores[c].item<double>(),
                             cosines[c].item<double>());
  }
  if (explained) {
    std::cout << fmt::format("relevance of {} (gradient x input):", (*explained)["class"].get<std::string>());
    for (const auto& file : (*explained)["files"])
      std::cout << " " << file["relevance"].get<std::string>();
    std::cout << "\n";
  }
  return 0;
}

int run_split(const ZeroShotArgs& args) {
  if (args.data.empty() || args.out.empty()) {
    throw UsageError("give --data and --out (or --study for one study)");
  }
  if (args.json) throw UsageError("--json is for --study; a split writes OUT/results.json");
  if (!args.explain.empty()) throw UsageError("--explain is for --study: it maps one study's scans");
  if (const auto status = train::launch_workers_if_asked(args.nproc_per_node, args.dist_timeout))
    return *status;
  const eval::ZeroShotTask task = make_task(args);
  const data::StudyDataset dataset =
      split_dataset(args.data, args.split,
                    dataset_preset(args.data, args.preset, task.modality.empty() ? "mri" : task.modality));
  model::HlipClip clip = load_model(args.model, args.device);
  const text::Tokenizer tokenizer = load_tokenizer(args.tokenizer, args.model);
  eval::ZeroShotOptions options;
  if (args.bootstrap >= 0 || args.seed >= 0) {
    eval::BootstrapOptions bootstrap = task.bootstrap;
    if (args.bootstrap >= 0) bootstrap.resamples = args.bootstrap;
    if (args.seed >= 0) bootstrap.seed = static_cast<uint64_t>(args.seed);
    options.bootstrap = bootstrap;
  }
  options.workers = args.workers;
  const Sharding sharding = connect_shards(args);
  options.shard = sharding.shard;
  options.progress = !args.no_progress && sharding.root();
  options.model = args.model;
  options.data = args.data;
  options.split = args.split;
  const eval::ZeroShotResult result = eval::evaluate_zeroshot(*clip, tokenizer, task, dataset, options);
  if (!sharding.root()) return 0;
  create_directories(args.out);
  const std::string results = (fs::path(args.out) / "results.json").string();
  const std::string scores = (fs::path(args.out) / "scores.csv").string();
  eval::write_results(result, results, scores);
  std::cout << eval::format_results_table(result);
  std::cout << fmt::format("wrote {} and {} ({:.1f} s)\n", results, scores, result.seconds);
  return 0;
}

// `hlip embed --texts FILE`: one text per line, "id<TAB>text" or just the text (its id then is the text
// itself); blank lines are skipped. Empty ids or texts and repeated ids are errors naming the line.
std::pair<std::vector<std::string>, std::vector<std::string>> read_text_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  std::vector<std::string> ids, texts;
  std::set<std::string> seen;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    const auto tab = line.find('\t');
    std::string id = tab == std::string::npos ? line : line.substr(0, tab);
    std::string text = tab == std::string::npos ? line : line.substr(tab + 1);
    if (id.empty()) throw Error(fmt::format("{}:{}: empty id before the tab", path, number));
    if (text.find_first_not_of(" \t") == std::string::npos) {
      throw Error(fmt::format("{}:{}: id \"{}\" has an empty text", path, number, id));
    }
    if (!seen.insert(id).second) throw Error(fmt::format("{}:{}: id \"{}\" appears twice", path, number, id));
    ids.push_back(std::move(id));
    texts.push_back(std::move(text));
  }
  if (texts.empty()) throw Error(fmt::format("{}: no texts (one per line)", path));
  return {ids, texts};
}

}  // namespace

Command zeroshot_command() {
  return {
      "zeroshot", "Zero-shot classification of a split (results.json, scores.csv) or of one study",
      [](CLI::App& app) {
        auto args = std::make_shared<ZeroShotArgs>();
        app.add_option("--model", args->model, "Model folder (open_clip_config.json + model.safetensors)")
            ->required();
        app.add_option("--tokenizer", args->tokenizer,
                       "Tokenizer folder or vocab.txt (default: MODEL/tokenizer)");
        app.add_option("--task", args->task,
                       fmt::format("Task name or JSON file ({})", fmt::join(eval::known_tasks(), ", ")));
        app.add_option("--classes", args->classes,
                       "Comma-separated class names: a multiclass task whose prompts (and labels) are the "
                       "names");
        app.add_option("--template", args->templates,
                       "A prompt template with {c} (repeatable): with --classes (default \"This study shows: "
                       "{c}.\"), or replacing a --task's templates");
        app.add_option("--data", args->data, "A prepared cache or a manifest (.jsonl, needs --preset)");
        app.add_option("--split", args->split, "Split to evaluate (\"all\": every study)")
            ->capture_default_str();
        app.add_option("--out", args->out, "Output folder for results.json and scores.csv");
        app.add_option("--study", args->study,
                       "One study's scans: NIfTI / .npy files or a DICOM folder (several allowed)")
            ->expected(1, -1);
        app.add_option(
            "--preset", args->preset,
            "Preprocessing: a preset name, a TOML file or a cache folder (its preset). For --study "
            "the default is the model folder's recorded preset, else the modality's");
        app.add_option("--modality", args->modality,
                       "mri or ct: the default preset for --study (default: the "
                       "task's, else mri)")
            ->check(CLI::IsMember({"mri", "ct"}));
        app.add_flag("--json", args->json, "With --study: print JSON instead of a table");
        app.add_option("--explain", args->explain,
                       "With --study: write a relevance map (gradient x input) per scan into this folder, "
                       "as NIfTI on the scan's own grid");
        app.add_option("--explain-class", args->explain_class,
                       "With --explain: the class to explain (default: the top-ranked class)");
        app.add_option("--bootstrap", args->bootstrap,
                       "Bootstrap resamples for the AUC intervals (default: "
                       "the task's, 1000)")
            ->check(CLI::NonNegativeNumber);
        app.add_option("--seed", args->seed, "Bootstrap seed (default: the task's, 0)")
            ->check(CLI::NonNegativeNumber);
        app.add_option("--workers", args->workers, "Threads reading studies ahead")->capture_default_str();
        add_device_flag(app, args->device);
        app.add_flag("--no-progress", args->no_progress, "Hide the progress bar");
        add_parallel_flags(app, *args);
        return [args] {
          if (!args->study.empty() && args->nproc_per_node > 1)
            throw UsageError("--nproc-per-node is for a split (--data), not one --study");
          return args->study.empty() ? run_split(*args) : run_single_study(*args);
        };
      }};
}

Command embed_command() {
  return {
      "embed",
      "Image embeddings of a split as safetensors (image_embeds [S, P, E], study ids in metadata), "
      "optionally "
      "with report and text embeddings",
      [](CLI::App& app) {
        auto args = std::make_shared<ZeroShotArgs>();
        app.add_option("--model", args->model, "Model folder (open_clip_config.json + model.safetensors)")
            ->required();
        app.add_option("--data", args->data, "A prepared cache or a manifest (.jsonl, needs --preset)")
            ->required();
        app.add_option("--split", args->split, "Split to embed (\"all\": every study)")
            ->capture_default_str();
        app.add_option("--out", args->out, "The safetensors file to write")->required();
        app.add_option("--preset", args->preset, "Preprocessing for a manifest: a preset name or TOML file");
        app.add_option("--modality", args->modality, "mri or ct, for a cache folder given as --preset")
            ->check(CLI::IsMember({"mri", "ct"}));
        app.add_option("--workers", args->workers, "Threads reading studies ahead")->capture_default_str();
        add_device_flag(app, args->device);
        app.add_flag("--no-progress", args->no_progress, "Hide the progress bar");
        app.add_option("--precision", args->precision,
                       "fp32, or bf16: the model's weights and activations in bfloat16 (embeddings are "
                       "written as float32)")
            ->check(CLI::IsMember({"fp32", "bf16"}))
            ->capture_default_str();
        app.add_flag("--reports", args->reports,
                     "Also embed each study's report: report_embeds [R, E], ids in report_studies");
        app.add_option("--report-source", args->report_source,
                       "With --reports: the study's reports.S instead of its main report");
        app.add_option("--texts", args->texts,
                       "Also embed the texts of this file, one per line (\"id<TAB>text\" names a row): "
                       "text_embeds [T, E], ids in text_ids");
        app.add_option("--tokenizer", args->tokenizer,
                       "Tokenizer folder or vocab.txt for --reports / --texts (default: MODEL/tokenizer)");
        add_parallel_flags(app, *args);
        return [args] {
          if (const auto status = train::launch_workers_if_asked(args->nproc_per_node, args->dist_timeout))
            return *status;
          const data::StudyDataset dataset = split_dataset(
              args->data, args->split,
              dataset_preset(args->data, args->preset, args->modality.empty() ? "mri" : args->modality));
          if (!args->report_source.empty() && !args->reports) {
            throw UsageError("--report-source goes with --reports");
          }
          std::optional<std::pair<std::vector<std::string>, std::vector<std::string>>> listed;
          if (!args->texts.empty()) listed = read_text_list(args->texts);  // before the slow steps
          model::HlipClip clip = load_model(args->model, args->device);
          if (args->precision == "bf16") clip->to(at::kBFloat16);  // weights, activations and inputs
          eval::EmbedOptions options;
          options.workers = args->workers;
          const Sharding sharding = connect_shards(*args);
          options.shard = sharding.shard;
          options.progress = !args->no_progress && sharding.root();
          const eval::StudyEmbeddings embeddings = eval::embed_dataset(*clip, dataset, options);
          if (!sharding.root()) return 0;  // rank 0 embeds the texts and writes the file
          std::optional<eval::TextEmbeddings> reports, texts;
          std::optional<text::Tokenizer> tokenizer;
          if (args->reports || listed) tokenizer = load_tokenizer(args->tokenizer, args->model);
          if (args->reports) {
            reports =
                eval::embed_reports(*clip, *tokenizer, dataset, embeddings.indices, args->report_source);
            if (reports->ids.empty()) {
              throw Error(fmt::format("{}: none of the {} studies of split \"{}\" has a report{} ({})",
                                      args->data, embeddings.ids.size(), args->split,
                                      args->report_source.empty() ? "" : " \"" + args->report_source + "\"",
                                      nlohmann::json(reports->skipped).dump()));
            }
          }
          if (listed) {
            texts = eval::TextEmbeddings{};
            texts->ids = listed->first;
            texts->texts = listed->second;
            texts->embeddings = eval::embed_texts(*clip, *tokenizer, texts->texts);
          }
          const auto folder = fs::path(args->out).parent_path();
          if (!folder.empty()) create_directories(folder.string());
          std::map<std::string, std::string> metadata = {{"generator", "hlip embed"},
                                                         {"model", args->model},
                                                         {"data", args->data},
                                                         {"split", args->split},
                                                         {"precision", args->precision}};
          if (reports)
            metadata["report_source"] = args->report_source.empty() ? "report" : args->report_source;
          if (texts) metadata["texts_file"] = args->texts;
          eval::write_embeddings(embeddings, args->out, metadata, reports ? &*reports : nullptr,
                                 texts ? &*texts : nullptr);
          std::cout << fmt::format(
              "wrote {}: image_embeds [{}, {}, {}] of {} studies ({} failed to load), {:.2f} studies/s\n",
              args->out, embeddings.embeddings.size(0), embeddings.embeddings.size(1),
              embeddings.embeddings.size(2), embeddings.ids.size(), embeddings.failed,
              static_cast<double>(embeddings.ids.size()) / std::max(embeddings.seconds, 1e-9));
          if (reports) {
            std::string skipped;
            for (const auto& [reason, count] : reports->skipped)
              skipped += fmt::format(", {} skipped: {}", count, reason);
            std::cout << fmt::format("report_embeds [{}, {}]{}\n", reports->embeddings.size(0),
                                     reports->embeddings.size(1), skipped);
          }
          if (texts) {
            std::cout << fmt::format("text_embeds [{}, {}] from {}\n", texts->embeddings.size(0),
                                     texts->embeddings.size(1), args->texts);
          }
          return 0;
        };
      }};
}

Command vqa_command() {
  return {
      "vqa",
      "Closed visual questions of a split (the manifest's \"qa\") answered zero-shot, scored against the "
      "majority answer",
      [](CLI::App& app) {
        auto args = std::make_shared<ZeroShotArgs>();
        auto answers = std::make_shared<std::string>("synth-mri");
        auto train_split = std::make_shared<std::string>("train");
        add_model_and_data_flags(app, args->model, args->tokenizer, args->data);
        app.add_option("--split", args->split, "Split whose questions to answer")->capture_default_str();
        app.add_option("--train-split", *train_split, "Split whose majority answers are the baseline")
            ->capture_default_str();
        app.add_option(
               "--answers", *answers,
               fmt::format("Answer set: a name ({}) or a JSON file", fmt::join(eval::known_vqa_sets(), ", ")))
            ->capture_default_str();
        app.add_option("--out", args->out, "Output folder for results.json and answers.csv")->required();
        app.add_option("--preset", args->preset, "Preprocessing for a manifest");
        app.add_option("--workers", args->workers, "Threads reading studies ahead")->capture_default_str();
        add_device_flag(app, args->device);
        app.add_flag("--no-progress", args->no_progress, "Hide the progress bar");
        return [args, answers, train_split] {
          const eval::VqaSet set = eval::load_vqa_set(*answers);
          const auto preset = dataset_preset(args->data, args->preset, "mri");
          const data::StudyDataset test = split_dataset(args->data, args->split, preset);
          const data::StudyDataset train(std::vector<data::DataSource>{data::parse_data_source(args->data)},
                                         *train_split, preset);
          model::HlipClip clip = load_model(args->model, args->device);
          const text::Tokenizer tokenizer = load_tokenizer(args->tokenizer, args->model);
          eval::VqaOptions options;
          options.embed.workers = args->workers;
          options.embed.progress = !args->no_progress;
          const eval::VqaResult result =
              eval::evaluate_zeroshot_vqa(*clip, tokenizer, set, test, train, options);
          create_directories(args->out);
          const std::string results = (fs::path(args->out) / "results.json").string();
          json written = result.results;
          written["model"] = args->model;
          written["data"] = args->data;
          written["split"] = args->split;
          write_file_atomic(results, written.dump(2) + "\n");
          const std::string table = write_vqa_answers(args->out, result.rows);
          print_vqa_table(result.results);
          std::cout << fmt::format("wrote {} and {}\n", results, table);
          return 0;
        };
      }};
}

}  // namespace hlip::cli
