#pragma once
// Runs an ablation sweep (`hlip ablate`): every arm × seed of a plan as `hlip train` and `hlip zeroshot`
// subprocesses, in parallel up to `jobs`, each claimed with a lock file so that several `hlip ablate`
// processes (on other machines sharing the folder) can work on one sweep folder. docs/ablation.md has the
// folder layout; sweep.json is what the report reads.
//
//   hlip::ablate::AblateOptions options;
//   options.spec = "configs/ablations/hlip-seed.toml";
//   options.out = "runs/ablate";
//   options.jobs = 2;
//   auto summary = hlip::ablate::run_sweep(options);   // runs/ablate/sweep.json, arms/<id>/seed-<S>/...

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "hlip/ablate/spec.h"

namespace hlip::ablate {

struct AblateOptions {
  std::string spec;
  std::string out;  // default: default_sweep_dir(spec, profile)
  std::string profile = "quick";
  int jobs = 0;                   // runs at once (0: the profile's jobs)
  int threads = 0;                // CPU threads shared by the jobs (0: all usable cores)
  bool resume = false;            // continue a sweep folder: skip finished runs, redo interrupted ones
  std::vector<std::string> only;  // ablation names or arm ids (empty: all); their fine-tuning sources too
  std::string binary = "/proc/self/exe";  // the hlip executable the runs use
  bool progress = true;                   // progress lines on stdout
  // A run's lock file is touched every minute while it runs; a lock of another host untouched for this long
  // is taken to be left by a crashed machine and taken over (a dead process of this host is seen at once).
  double stale_lock_minutes = 10;
};

// Claims a run by creating `lock` exclusively ("host pid"). Taken over: a lock of a process of this host that
// no longer runs, and a lock of another host whose file was last touched more than `stale_after` ago. False
// when a live run holds it.
bool claim_run_lock(const std::filesystem::path& lock, std::chrono::seconds stale_after);

struct SweepSummary {
  int runs = 0;  // arm × seed runs selected
  int done = 0;  // finished (now or before)
  int failed = 0;
  int elsewhere = 0;  // held by another hlip ablate process
  double seconds = 0;
};

SweepSummary run_sweep(const AblateOptions& options);

// runs/ablate/<spec file name without .toml>-<profile>, e.g. runs/ablate/hlip-seed-quick.
std::string default_sweep_dir(const std::string& spec, const std::string& profile);

// The run folder of an arm and seed, relative to the sweep folder: arms/<id>/seed-<S>.
std::string run_path(const std::string& arm_id, uint64_t seed);

// sweep.json of a plan, with each arm's status read from the run folders under `dir`.
nlohmann::json sweep_json(const SweepPlan& plan, const std::filesystem::path& dir);

// A metric of a results.json: "macro_auc" is mean.auc; other names are looked up under mean, then
// multiclass. Null when absent.
nlohmann::json metric_value(const nlohmann::json& results, const std::string& metric);

}  // namespace hlip::ablate
