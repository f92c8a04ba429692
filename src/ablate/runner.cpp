#include "hlip/ablate/runner.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "hlip/ablate/costs.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/core/runtime.h"
#include "hlip/model/clip.h"
#include "hlip/train/trainer.h"

namespace hlip::ablate {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The one-line error of a failed hlip command: the last line of its log that starts with "hlip: " (a usage
// line follows it for usage errors), else the last non-empty line.
std::string last_line(const fs::path& log) {
  std::istringstream in(read_text(log));
  std::string last;
  std::string error;
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t\r") != std::string::npos) last = line;
    if (line.rfind("hlip: ", 0) == 0) error = line;
  }
  if (!error.empty()) return error;
  return last.empty() ? "(no output)" : last;
}

std::string toml_quote(const std::string& text) {
  return json(text).dump();
}

// A JSON value as a TOML value (strings, numbers, booleans and lists of them).
std::string toml_value(const json& value) {
  if (value.is_string()) return toml_quote(value.get<std::string>());
  if (value.is_array()) {
    std::string out = "[";
    for (size_t i = 0; i < value.size(); ++i)
      out += (i > 0 ? ", " : "") + toml_value(value[i]);
    return out + "]";
  }
  if (value.is_number_float()) {
    const std::string text = value.dump();
    return text.find_first_of(".eE") == std::string::npos ? text + ".0" : text;
  }
  return value.dump();
}

struct ProcessResult {
  int exit_code = -1;
  double seconds = 0;
  int64_t peak_rss_bytes = 0;
};

// Runs `argv` with stdout and stderr appended to `log`; the child dies with the thread that started it.
ProcessResult run_process(const std::vector<std::string>& argv, const fs::path& log) {
  std::vector<char*> args;
  for (const auto& arg : argv)
    args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const std::string log_path = log.string();
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw Error(fmt::format("cannot start {}: fork failed", argv[0]));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, STDOUT_FILENO);
      dup2(fd, STDERR_FILENO);
      close(fd);
    }
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, STDIN_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  struct rusage usage {};
  while (wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) throw Error(fmt::format("waiting for {} failed", argv[0]));
  }
  ProcessResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.peak_rss_bytes = static_cast<int64_t>(usage.ru_maxrss) * 1024;
  return result;
}

void run_checked(const std::vector<std::string>& argv, const fs::path& log, const std::string& what) {
  const ProcessResult result = run_process(argv, log);
  if (result.exit_code != 0)
    throw Error(fmt::format("{} failed (exit {}): {}; log: {}", what, result.exit_code, last_line(log),
                            log.string()));
}

std::string hostname() {
  char name[256] = {};
  gethostname(name, sizeof(name) - 1);
  return name;
}

}  // namespace

bool claim_run_lock(const fs::path& lock, std::chrono::seconds stale_after) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    const int fd = open(lock.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd >= 0) {
      const std::string owner = fmt::format("{} {}\n", hostname(), getpid());
      const ssize_t written = write(fd, owner.data(), owner.size());
      close(fd);
      if (written != static_cast<ssize_t>(owner.size()))
        throw Error(fmt::format("{}: cannot write", lock.string()));
      return true;
    }
    if (errno != EEXIST) throw Error(fmt::format("{}: cannot create the lock file", lock.string()));
    std::istringstream owner(read_text(lock));
    std::string host;
    pid_t pid = 0;
    owner >> host >> pid;
    bool stale = host == hostname() && pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
    if (!stale && host != hostname()) {
      std::error_code error;
      const auto touched = fs::last_write_time(lock, error);
      stale = !error && fs::file_time_type::clock::now() - touched > stale_after;
      if (stale) {
        spdlog::warn("ablate: {} of {} (pid {}) untouched for over {} s: taking the run over", lock.string(),
                     host, pid, stale_after.count());
      }
    }
    if (!stale) return false;
    const fs::path moved = lock.string() + fmt::format(".stale.{}", getpid());
    std::error_code ignored;
    fs::rename(lock, moved, ignored);
    fs::remove(moved, ignored);
  }
  return false;
}

namespace {

struct Data {
  std::map<std::string, std::string> caches;  // dataset name → cache folder
  std::string tokenizer;
};

// The profile's data: its own caches, or synthetic MRI and CT built once under DIR/data (several hlip
// ablate processes wait for one another with flock).
Data prepare_data(const SweepPlan& plan, const fs::path& dir, const AblateOptions& options, int threads) {
  Data data;
  if (!plan.profile.synth) {
    data.caches = plan.profile.datasets;
    data.tokenizer = plan.profile.tokenizer;
    return data;
  }
  const SynthData& synth = *plan.profile.synth;
  const fs::path root = dir / "data";
  data.caches = {{"mri", (root / "cache-mri").string()}, {"ct", (root / "cache-ct").string()}};
  data.tokenizer = (root / "tokenizer").string();
  create_directories(root.string());
  if (fs::exists(root / "DONE")) return data;
  const fs::path lock_path = root / "data.lock";
  const int fd = open(lock_path.c_str(), O_WRONLY | O_CREAT, 0644);
  if (fd < 0 || flock(fd, LOCK_EX) != 0) throw Error(fmt::format("{}: cannot lock", lock_path.string()));
  try {
    if (!fs::exists(root / "DONE")) {
      const auto start = Clock::now();
      const std::string binary = options.binary;
      const std::string t = std::to_string(threads);
      const fs::path log = root / "data.log";
      const fs::path manifest = root / "synth/studies.jsonl";
      if (options.progress)
        std::cout << fmt::format("ablate: data: synth {} studies (MRI and CT)\n", synth.studies)
                  << std::flush;
      if (!fs::exists(manifest)) {
        fs::remove_all(root / "synth");
        run_checked({binary, "--threads", t, "synth", "--out", (root / "synth").string(), "--studies",
                     std::to_string(synth.studies), "--seed", std::to_string(synth.seed), "--size",
                     synth.size, "--modality", "both", "--no-progress"},
                    log, "hlip synth");
      }
      // One manifest per modality, beside the full one (scan paths are relative to the manifest's folder).
      std::ofstream mri(root / "synth/studies-mri.jsonl");
      std::ofstream ct(root / "synth/studies-ct.jsonl");
      std::ifstream in(manifest);
      for (std::string line; std::getline(in, line);) {
        if (line.empty()) continue;
        const json study = json::parse(line);
        (study.value("modality", "mri") == "ct" ? ct : mri) << line << "\n";
      }
      mri.close();
      ct.close();
      for (const auto& [name, preset] : std::vector<std::pair<std::string, std::string>>{
               {"mri", synth.mri_preset}, {"ct", synth.ct_preset}}) {
        if (options.progress) std::cout << fmt::format("ablate: data: prepare {}\n", name) << std::flush;
        run_checked({binary, "--threads", t, "prepare", "--manifest",
                     (root / ("synth/studies-" + name + ".jsonl")).string(), "--out", data.caches.at(name),
                     "--preset", preset, "--no-progress"},
                    log, "hlip prepare " + name);
      }
      if (!fs::exists(root / "tokenizer/vocab.txt")) {
        run_checked({binary, "vocab", "--manifest", manifest.string(), "--out",
                     (root / "tokenizer/vocab.txt").string(), "--size", std::to_string(synth.vocab_size)},
                    log, "hlip vocab");
      }
      write_file_atomic((root / "DONE").string(),
                        fmt::format("{:.1f}\n", std::chrono::duration<double>(Clock::now() - start).count()));
    }
  } catch (...) {
    flock(fd, LOCK_UN);
    close(fd);
    throw;
  }
  flock(fd, LOCK_UN);
  close(fd);
  return data;
}

std::string join_labels(const SweepPlan& plan, const std::string& id) {
  std::string out;
  for (const auto& ablation : plan.ablations) {
    for (const auto& [label, arm] : ablation.arms) {
      if (arm == id) out += (out.empty() ? "" : ", ") + ablation.name + ": " + label;
    }
  }
  return out;
}

class Sweep {
 public:
  Sweep(const AblateOptions& options, SweepPlan plan, fs::path dir, int jobs, int threads_per_job)
      : options_(options),
        plan_(std::move(plan)),
        dir_(std::move(dir)),
        jobs_(jobs),
        threads_per_job_(threads_per_job) {
    std::set<std::string> selected;
    std::function<void(const std::string&)> select = [&](const std::string& id) {
      if (!selected.insert(id).second) return;
      const Arm& arm = plan_.arm(id);
      if (!arm.source().empty()) select(arm.source());
    };
    for (const auto& name : options_.only) {
      bool found = false;
      for (const auto& ablation : plan_.ablations) {
        if (ablation.name != name) continue;
        found = true;
        for (const auto& [label, id] : ablation.arms)
          select(id);
      }
      for (const auto& arm : plan_.arms) {
        if (arm.id == name) {
          found = true;
          select(arm.id);
        }
      }
      if (!found)
        throw UsageError(
            fmt::format("--only {}: no ablation or arm of that name in {}", name, plan_.spec_file));
    }
    for (size_t a = 0; a < plan_.arms.size(); ++a) {
      if (!options_.only.empty() && selected.count(plan_.arms[a].id) == 0) continue;
      for (const uint64_t seed : plan_.profile.seeds)
        runs_.push_back({a, seed, State::kTodo});
    }
  }

  const SweepPlan& plan() const { return plan_; }
  void set_data(Data data) { data_ = std::move(data); }

  SweepSummary run() {
    const auto start = Clock::now();
    write_sweep();
    std::vector<std::thread> workers;
    for (int j = 0; j < jobs_; ++j)
      workers.emplace_back([this] { work(); });
    std::thread heartbeat([this] { touch_running_locks(); });
    for (auto& worker : workers)
      worker.join();
    {
      std::lock_guard<std::mutex> guard(mutex_);
      stopping_ = true;
    }
    changed_.notify_all();
    heartbeat.join();
    write_sweep();
    SweepSummary summary;
    summary.runs = static_cast<int>(runs_.size());
    for (const auto& run : runs_) {
      summary.done += run.state == State::kDone;
      summary.failed += run.state == State::kFailed;
      summary.elsewhere += run.state == State::kElsewhere;
    }
    summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return summary;
  }

 private:
  enum class State { kTodo, kRunning, kDone, kFailed, kElsewhere };
  struct Run {
    size_t arm;
    uint64_t seed;
    State state;
  };

  fs::path run_dir(const Run& run) const { return dir_ / run_path(plan_.arms[run.arm].id, run.seed); }

  std::chrono::seconds stale_after() const {
    return std::chrono::seconds(static_cast<int64_t>(options_.stale_lock_minutes * 60));
  }

  // Every minute, the lock files of this process's runs get a fresh modification time, so that other hosts
  // can tell a live run from one whose machine crashed (claim_run_lock).
  void touch_running_locks() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      changed_.wait_for(lock, std::chrono::seconds(60), [this] { return stopping_; });
      for (const Run& run : runs_) {
        if (run.state != State::kRunning) continue;
        std::error_code ignored;
        fs::last_write_time(run_dir(run).string() + ".lock", fs::file_time_type::clock::now(), ignored);
      }
    }
  }

  void write_sweep() {
    std::lock_guard<std::mutex> guard(write_mutex_);
    write_file_atomic((dir_ / "sweep.json").string(), sweep_json(plan_, dir_).dump(2) + "\n");
  }

  void say(const std::string& line) {
    if (!options_.progress) return;
    std::lock_guard<std::mutex> guard(print_mutex_);
    std::cout << line << "\n" << std::flush;
  }

  // Picks the next run this process can do; false when nothing is left for it.
  bool next(size_t& index) {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      bool waiting = false;
      for (size_t i = 0; i < runs_.size(); ++i) {
        Run& run = runs_[i];
        if (run.state != State::kTodo && run.state != State::kElsewhere) continue;
        const fs::path folder = run_dir(run);
        if (fs::exists(folder / "DONE")) {
          run.state = State::kDone;
          continue;
        }
        const Arm& arm = plan_.arms[run.arm];
        if (!arm.source().empty()) {
          const fs::path source = dir_ / run_path(arm.source(), run.seed);
          if (fs::exists(source / "FAILED")) {
            fail(run, fmt::format("the arm it starts from ({} seed {}) failed", arm.source(), run.seed));
            continue;
          }
          if (!fs::exists(source / "DONE")) {
            waiting = true;
            continue;
          }
        }
        create_directories(folder.parent_path().string());
        if (!claim_run_lock(folder.string() + ".lock", stale_after())) {
          run.state = State::kElsewhere;
          continue;
        }
        if (fs::exists(folder / "DONE")) {  // finished between the check and the claim
          std::error_code ignored;
          fs::remove(folder.string() + ".lock", ignored);
          run.state = State::kDone;
          continue;
        }
        run.state = State::kRunning;
        index = i;
        return true;
      }
      const bool running =
          std::any_of(runs_.begin(), runs_.end(), [](const Run& r) { return r.state == State::kRunning; });
      if (!waiting) return false;
      // A fine-tuning run waits for its source: run here (woken when it ends) or elsewhere (polled).
      if (!running &&
          std::none_of(runs_.begin(), runs_.end(), [](const Run& r) { return r.state == State::kElsewhere; }))
        return false;
      changed_.wait_for(lock, std::chrono::seconds(2));
    }
  }

  void fail(Run& run, const std::string& message) {
    run.state = State::kFailed;
    const fs::path folder = run_dir(run);
    create_directories(folder.string());
    write_file_atomic((folder / "FAILED").string(), message + "\n");
    say(fmt::format("ablate: FAILED arm {} seed {} ({}): {}", plan_.arms[run.arm].id, run.seed,
                    join_labels(plan_, plan_.arms[run.arm].id), message));
  }

  void work() {
    size_t index = 0;
    while (next(index)) {
      Run& run = runs_[index];
      const Arm& arm = plan_.arms[run.arm];
      const fs::path folder = run_dir(run);
      std::string error;
      try {
        execute(arm, run.seed, folder);
      } catch (const std::exception& e) {
        error = e.what();
      }
      {
        std::lock_guard<std::mutex> guard(mutex_);
        if (error.empty()) {
          run.state = State::kDone;
          ++finished_;
        } else {
          fail(run, error);
        }
        std::error_code ignored;
        fs::remove(folder.string() + ".lock", ignored);
      }
      write_sweep();
      changed_.notify_all();
    }
  }

  void execute(const Arm& arm, uint64_t seed, const fs::path& folder) {
    const auto start = Clock::now();
    create_directories(folder.string());
    std::error_code ignored;
    fs::remove(folder / "FAILED", ignored);
    const fs::path arm_dir = folder.parent_path();
    const fs::path model_json = arm_dir / "model.json";
    if (!fs::exists(model_json)) write_file_atomic(model_json.string(), arm.model.dump(2) + "\n");
    if (!fs::exists(arm_dir / "arm.json")) {
      write_file_atomic(
          (arm_dir / "arm.json").string(),
          json{{"id", arm.id}, {"changes", arm.changes}, {"config", arm.config}}.dump(2) + "\n");
    }
    say(fmt::format("ablate: start arm {} seed {} ({})", arm.id, seed, join_labels(plan_, arm.id)));

    const fs::path train_dir = folder / "train";
    const fs::path process_json = folder / "train_process.json";
    if (!fs::exists(train_dir / "model/open_clip_config.json") || !fs::exists(process_json)) {
      const bool resume = fs::exists(train_dir / "checkpoints/latest");
      if (!resume) fs::remove_all(train_dir);
      std::string toml = "# written by hlip ablate: arm " + arm.id + ", seed " + std::to_string(seed) + "\n";
      for (const auto& [key, value] : arm.config.items()) {
        if (key.rfind("train.", 0) == 0) toml += fmt::format("{} = {}\n", key.substr(6), toml_value(value));
      }
      json train_data = json::array();
      for (const auto& item : arm.config.at("data.train")) {
        const std::string spec = item;
        const auto at = spec.find('@');
        train_data.push_back(data_.caches.at(spec.substr(0, at)) +
                             (at == std::string::npos ? "" : spec.substr(at)));
      }
      const std::string eval_cache = data_.caches.at(arm.config.at("data.eval"));
      toml += fmt::format("model = {}\n", toml_quote(fs::absolute(model_json).string()));
      toml += fmt::format("tokenizer = {}\n", toml_quote(data_.tokenizer));
      toml += fmt::format("train_data = {}\n", toml_value(train_data));
      toml += fmt::format("zeroshot_task = {}\n", toml_quote(arm.config.at("eval.task")));
      toml += fmt::format("zeroshot_data = [{}]\n", toml_quote(eval_cache));
      if (arm.config.contains("eval.template"))
        toml += fmt::format("zeroshot_template = {}\n", toml_quote(arm.config.at("eval.template")));
      toml += fmt::format("seed = {}\n", seed);
      toml += fmt::format("logs = {}\n", toml_quote(fs::absolute(folder).string()));
      toml += "name = \"train\"\n";
      if (!arm.source().empty()) {
        toml += fmt::format(
            "{} = {}\n", arm.finetune_from.empty() ? "init_2d" : "finetune",
            toml_quote(fs::absolute(dir_ / run_path(arm.source(), seed) / "train/model").string()));
      }
      if (resume) toml += "resume = \"latest\"\n";
      write_file_atomic((folder / "train.toml").string(), toml);
      const ProcessResult trained =
          run_process({options_.binary, "--threads", std::to_string(threads_per_job_), "train", "--config",
                       (folder / "train.toml").string(), "--no-progress"},
                      folder / "train.log");
      if (trained.exit_code != 0) throw Error(fmt::format("hlip train: {}", last_line(folder / "train.log")));
      write_file_atomic(
          process_json.string(),
          json{{"wall_s", trained.seconds}, {"peak_rss_bytes", trained.peak_rss_bytes}}.dump() + "\n");
    }

    fs::remove_all(folder / "zeroshot");
    std::vector<std::string> zeroshot_command{options_.binary,
                                              "--threads",
                                              std::to_string(threads_per_job_),
                                              "zeroshot",
                                              "--model",
                                              (train_dir / "model").string(),
                                              "--data",
                                              data_.caches.at(arm.config.at("data.eval")),
                                              "--split",
                                              plan_.split,
                                              "--task",
                                              arm.config.at("eval.task"),
                                              "--out",
                                              (folder / "zeroshot").string(),
                                              "--no-progress"};
    if (arm.config.contains("eval.template")) {
      zeroshot_command.push_back("--template");
      zeroshot_command.push_back(arm.config.at("eval.template"));
    }
    const ProcessResult scored = run_process(zeroshot_command, folder / "zeroshot.log");
    if (scored.exit_code != 0)
      throw Error(fmt::format("hlip zeroshot: {}", last_line(folder / "zeroshot.log")));

    RunCost cost;
    const json process = json::parse(read_text(process_json));
    cost.wall_s = process.at("wall_s");
    cost.peak_rss_bytes = process.at("peak_rss_bytes");
    read_step_metrics((train_dir / "metrics.jsonl").string(), cost);
    model::ClipConfig config = model::ClipConfig::from_json(arm.model);
    const double forced = arm.config.value("train.force_patch_dropout", -1.0);
    if (forced >= 0) config.vision.patch_dropout = forced;
    cost.tokens_per_scan = tokens_per_scan(config.vision);
    cost.params = parameter_count(config);
    const int64_t num_scans = arm.config.value("train.num_scans", train::TrainOptions{}.num_scans);
    cost.flops_per_study = vision_flops_per_study(config.vision, num_scans, /*training=*/true);
    write_file_atomic((folder / "cost.json").string(), cost.to_json().dump(2) + "\n");

    const json results = json::parse(read_text(folder / "zeroshot/results.json"));
    const json value = metric_value(results, plan_.metric);
    write_file_atomic((folder / "DONE").string(), fmt::format("{}\n", value.dump()));
    say(fmt::format("ablate: done arm {} seed {} in {:.0f} s: {} {} ({} of {} runs finished here)", arm.id,
                    seed, std::chrono::duration<double>(Clock::now() - start).count(), plan_.metric,
                    value.is_number() ? fmt::format("{:.4f}", value.get<double>()) : value.dump(),
                    finished_.load() + 1, runs_.size()));
  }

  const AblateOptions& options_;
  SweepPlan plan_;
  fs::path dir_;
  Data data_;
  int jobs_;  // runs at once
  int threads_per_job_;
  std::vector<Run> runs_;
  std::mutex mutex_;
  std::mutex write_mutex_;
  std::mutex print_mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;  // the workers are done: the heartbeat ends
  std::atomic<int> finished_{0};
};

}  // namespace

std::string run_path(const std::string& arm_id, uint64_t seed) {
  return fmt::format("arms/{}/seed-{}", arm_id, seed);
}

json metric_value(const json& results, const std::string& metric) {
  const std::string key = metric == "macro_auc" ? "auc" : metric;
  for (const char* group : {"mean", "multiclass"}) {
    if (results.contains(group) && results.at(group).contains(key) && results.at(group).at(key).is_number())
      return results.at(group).at(key);
  }
  return nullptr;
}

json sweep_json(const SweepPlan& plan, const fs::path& dir) {
  json out;
  out["spec"] = plan.spec_file;
  out["title"] = plan.title;
  out["profile"] = plan.profile.name;
  out["task"] = plan.task;
  out["split"] = plan.split;
  out["metric"] = plan.metric;
  out["higher_is_better"] = plan.higher_is_better;
  out["results_key"] = plan.metric == "macro_auc" ? "mean.auc" : "mean." + plan.metric;
  out["curve_key"] = plan.metric == "macro_auc" ? "zeroshot/mean_auc" : "zeroshot/mean_" + plan.metric;
  out["seeds"] = plan.profile.seeds;
  out["steps"] = plan.profile.steps;
  json ablations = json::array();
  for (const auto& ablation : plan.ablations) {
    json arms = json::array();
    for (const auto& [label, id] : ablation.arms)
      arms.push_back({{"label", label}, {"arm", id}});
    ablations.push_back({{"index", ablation.index},
                         {"name", ablation.name},
                         {"title", ablation.title},
                         {"note", ablation.note},
                         {"task", ablation.task},
                         {"arms", arms}});
  }
  out["ablations"] = ablations;
  json arms = json::object();
  for (const auto& arm : plan.arms) {
    json runs = json::object();
    bool all_done = true;
    json error = nullptr;
    for (const uint64_t seed : plan.profile.seeds) {
      const std::string path = run_path(arm.id, seed);
      runs[std::to_string(seed)] = path;
      if (fs::exists(dir / path / "DONE")) continue;
      all_done = false;
      if (error.is_null() && fs::exists(dir / path / "FAILED")) {
        std::string message = read_text(dir / path / "FAILED");
        while (!message.empty() && message.back() == '\n')
          message.pop_back();
        error = fmt::format("seed {}: {}", seed, message);
      }
    }
    arms[arm.id] = {{"changes", arm.changes},
                    {"status", !error.is_null() ? "failed"
                               : all_done       ? "done"
                                                : "pending"},
                    {"error", error},
                    {"finetune_from", arm.finetune_from.empty() ? json(nullptr) : json(arm.finetune_from)},
                    {"inflate_from", arm.inflate_from.empty() ? json(nullptr) : json(arm.inflate_from)},
                    {"runs", runs}};
  }
  out["arms"] = arms;
  return out;
}

std::string default_sweep_dir(const std::string& spec, const std::string& profile) {
  return (fs::path("runs/ablate") / (fs::path(spec).stem().string() + "-" + profile)).string();
}

SweepSummary run_sweep(const AblateOptions& options) {
  SweepPlan plan = plan_sweep(read_sweep_spec(options.spec), options.profile);
  const fs::path dir = options.out;
  if (!options.resume && fs::exists(dir / "arms") && !fs::is_empty(dir / "arms")) {
    throw UsageError(
        fmt::format("{} already holds runs of a sweep: pass --resume to continue it (finished runs are "
                    "kept), or choose another --out",
                    dir.string()));
  }
  const int total = options.threads > 0 ? options.threads : hardware_threads();
  const int jobs = options.jobs > 0 ? options.jobs : plan.profile.jobs;
  const int per_job = std::max(1, total / jobs);
  if (options.progress) {
    std::cout << fmt::format(
                     "ablate: {} ({} profile): {} ablations, {} distinct arms, {} seed(s); {} job(s) of {} "
                     "thread(s)\n",
                     plan.spec_file, plan.profile.name, plan.ablations.size(), plan.arms.size(),
                     plan.profile.seeds.size(), jobs, per_job)
              << std::flush;
  }
  Sweep sweep(options, std::move(plan), dir, jobs, per_job);  // checks --only first
  create_directories(dir.string());
  sweep.set_data(prepare_data(sweep.plan(), dir, options, total));
  return sweep.run();
}

}  // namespace hlip::ablate
