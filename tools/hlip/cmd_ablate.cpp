// `hlip ablate SPEC --out DIR`: an ablation sweep (docs/ablation.md): every distinct arm × seed trained and
// evaluated as subprocesses, then the report.
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "hlip/ablate/report.h"
#include "hlip/ablate/runner.h"
#include "hlip/ablate/spec.h"

namespace hlip::cli {

Command ablate_command() {
  return {
      "ablate", "Run an ablation sweep from a TOML spec (arms in parallel, resumable) and write its report",
      [](CLI::App& app) {
        auto options = std::make_shared<ablate::AblateOptions>();
        auto plan_only = std::make_shared<bool>(false);
        auto report_only = std::make_shared<bool>(false);
        auto no_progress = std::make_shared<bool>(false);
        app.add_option("spec", options->spec, "The sweep spec (TOML), e.g. configs/ablations/hlip-seed.toml")
            ->required();
        app.add_option("--out", options->out,
                       "The sweep folder (sweep.json, arms/, data/, the report); default: "
                       "runs/ablate/<spec name>-<profile>");
        app.add_option("--profile", options->profile, "A profile of the spec (quick, full, ...)")
            ->capture_default_str();
        app.add_option("--jobs", options->jobs,
                       "Runs at once (default: the profile's jobs, else 1); --threads is split between them")
            ->check(CLI::PositiveNumber);
        app.add_flag("--resume", options->resume,
                     "Continue the sweep in --out: skip finished runs, redo interrupted and failed ones");
        app.add_option(
            "--only", options->only,
            "Only this ablation (name) or arm (id), with the arms they fine-tune from; repeatable");
        app.add_option(
               "--stale-lock-minutes", options->stale_lock_minutes,
               "Take over a run whose lock, from another host, was not touched for this long (a live run "
               "touches it every minute)")
            ->check(CLI::PositiveNumber)
            ->capture_default_str();
        app.add_flag("--plan", *plan_only, "Print the ablations and their arms (ids, changes) and stop");
        app.add_flag("--report-only", *report_only, "Rewrite the report from what is in --out, run nothing");
        app.add_flag("--no-progress", *no_progress, "No progress lines");
        return [options, plan_only, report_only, no_progress] {
          options->threads = at::get_num_threads();
          if (options->out.empty()) options->out = ablate::default_sweep_dir(options->spec, options->profile);
          options->progress = !*no_progress;
          if (*plan_only) {
            const auto plan = ablate::plan_sweep(ablate::read_sweep_spec(options->spec), options->profile);
            for (const auto& ablation : plan.ablations) {
              std::cout << fmt::format("{}. {} ({}):", ablation.index, ablation.name, ablation.title);
              for (const auto& [label, id] : ablation.arms)
                std::cout << fmt::format(" {}={}", label, id);
              std::cout << "\n";
            }
            for (const auto& arm : plan.arms)
              std::cout << fmt::format("arm {} {}\n", arm.id, arm.changes.dump());
            std::cout << fmt::format("{} ablations, {} distinct arms, {} seed(s)\n", plan.ablations.size(),
                                     plan.arms.size(), plan.profile.seeds.size());
            return 0;
          }
          int failed = 0;
          if (!*report_only) {
            const auto summary = ablate::run_sweep(*options);
            failed = summary.failed;
            std::cout << fmt::format(
                "sweep: {} runs: {} done, {} failed, {} held by other processes; {:.0f} s\n", summary.runs,
                summary.done, summary.failed, summary.elsewhere, summary.seconds);
          }
          const auto files = ablate::write_report(options->out);
          std::cout << fmt::format("report: {}\n", files.markdown.string());
          // The report lists failed arms; the exit status tells scripts that some runs need a look.
          if (failed > 0) {
            std::cerr << fmt::format("hlip: {} run(s) failed; their errors are in {}/sweep.json\n", failed,
                                     options->out);
            return 1;
          }
          return 0;
        };
      }};
}

}  // namespace hlip::cli
