// `hlip version` and `hlip doctor`: what hlip runs on, and how fast.
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "hlip/core/doctor.h"

namespace hlip::cli {

Command version_command() {
  return {"version", "Show hlip and LibTorch versions, CUDA devices, BLAS and threads", [](CLI::App& app) {
            auto json = std::make_shared<bool>(false);
            app.add_flag("--json", *json, "Print one JSON object");
            return [json] {
              const auto info = runtime_info();
              std::cout << (*json ? to_json(info).dump(2) + "\n" : describe(info));
              return 0;
            };
          }};
}

Command doctor_command() {
  return {"doctor", "Check the set-up: measure fp32/bf16 GEMM, BLAS in use, threads, c10d Gloo",
          [](CLI::App& app) {
            auto json = std::make_shared<bool>(false);
            auto options = std::make_shared<DoctorOptions>();
            app.add_flag("--json", *json, "Print one JSON object");
            app.add_option("--gemm-size", options->gemm_size, "Matrix size n of the n×n GEMM measured")
                ->check(CLI::Range(64, 8192))
                ->capture_default_str();
            app.add_option("--seconds", options->seconds_per_measurement, "Time spent on each GEMM rate")
                ->check(CLI::Range(0.01, 60.0))
                ->capture_default_str();
            return [json, options] {
              const auto report = run_doctor(*options);
              if (*json) {
                std::cout << to_json(report).dump(2) << "\n";
              } else {
                std::cout << describe(report.runtime)
                          << fmt::format("GEMM      fp32 {:.1f} GFLOP/s, bf16 {:.1f} GFLOP/s (n = {})\n",
                                         report.gemm_fp32_gflops, report.gemm_bf16_gflops, options->gemm_size)
                          << "Gloo      " << (report.gloo.usable ? "ok: " : "NOT USABLE: ")
                          << report.gloo.message << "\n";
                for (const auto& warning : report.warnings)
                  std::cout << "warning: " << warning << "\n";
                if (report.warnings.empty()) std::cout << "all checks passed\n";
              }
              return 0;
            };
          }};
}

}  // namespace hlip::cli
