// `hlip report`: a Markdown page with a run's loss and zero-shot curves (SVG) and a zero-shot results table.
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "hlip/eval/report.h"

namespace hlip::cli {

Command report_command() {
  return {
      "report", "Write a Markdown report of a training run (loss and zero-shot curves, results table)",
      [](CLI::App& app) {
        auto options = std::make_shared<eval::RunReportOptions>();
        app.add_option("--run", options->run_dir, "A `hlip train` run folder")->required();
        app.add_option("--zeroshot", options->zeroshot_dir, "A `hlip zeroshot` output folder (results.json)");
        app.add_option("--out", options->out, "The Markdown file; charts are written beside it")->required();
        return [options] {
          std::cout << eval::write_run_report(*options);
          std::cout << fmt::format("\nreport: {}\n", options->out);
          return 0;
        };
      }};
}

}  // namespace hlip::cli
