// `hlip prepare`: raw studies → the scan cache; `hlip manifest`: a manifest
// from a CSV table.
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/data/csv_manifest.h"
#include "hlip/data/prepare.h"

namespace hlip::cli {

Command prepare_command() {
  return {"prepare",
          "Preprocess a manifest's scans into a scan cache (resumable; bad scans "
          "are listed)",
          [](CLI::App& app) {
            auto options = std::make_shared<data::PrepareOptions>();
            auto dtype = std::make_shared<std::string>("uint8");
            app.add_option("--manifest", options->manifest, "The studies (JSON Lines, docs/manifest.md)")
                ->required();
            app.add_option("--out", options->out_dir, "The cache folder")->required();
            app.add_option("--preset", options->preset,
                           "auto (by each study's modality), mri-brain, ct-head, "
                           "ct-chest, or a .toml file")
                ->capture_default_str();
            app.add_option("--dtype", *dtype, "Stored voxel type: uint8 (HLIP's) or float16")
                ->check(CLI::IsMember({"uint8", "float16"}))
                ->capture_default_str();
            app.add_option("--split", options->split, "Only studies of this split");
            app.add_option("--volume", options->volume, "The volume of 4D files")->capture_default_str();
            app.add_option("--workers", options->threads,
                           "Studies prepared at once (default: the --threads count)");
            app.add_flag("--strict", options->strict, "Stop at the first bad scan instead of listing it");
            app.add_flag(
                "--no-progress", [options](int64_t) { options->progress = false; }, "Hide the progress bar");
            return [options, dtype] {
              options->dtype = data::parse_cache_dtype(*dtype);
              const auto summary = data::prepare_dataset(*options);
              std::cout << fmt::format(
                  "prepared {} of {} studies into {} in {:.1f} s: {} scans "
                  "written, {} reused, {} failed "
                  "scans, {} failed studies{}\n",
                  summary.prepared, summary.studies, options->out_dir, summary.seconds, summary.scans_written,
                  summary.scans_reused, summary.failed_scans, summary.failed_studies,
                  summary.failed_scans + summary.failed_studies > 0
                      ? fmt::format(" (reasons in {})", summary.failures_path)
                      : "");
              return 0;
            };
          }};
}

Command manifest_command() {
  return {
      "manifest",
      "Write a manifest (JSON Lines) from a CSV table of studies, scans, "
      "reports and labels",
      [](CLI::App& app) {
        auto options = std::make_shared<data::CsvManifestOptions>();
        app.add_option("--csv", options->csv, "The table; paths relative to its folder")->required();
        app.add_option("--out", options->out, "The manifest to write (a folder above the data)")->required();
        app.add_option("--study-column", options->study_column)->capture_default_str();
        app.add_option("--scan-column", options->scan_column, "Scan paths, ';'-separated")
            ->capture_default_str();
        app.add_option("--scan-name-column", options->scan_name_column)->capture_default_str();
        app.add_option("--report-column", options->report_column)->capture_default_str();
        app.add_option("--modality-column", options->modality_column)->capture_default_str();
        app.add_option("--split-column", options->split_column)->capture_default_str();
        app.add_option("--modality", options->modality, "When there is no modality column")
            ->check(CLI::IsMember({"mri", "ct"}))
            ->capture_default_str();
        app.add_option("--labels", options->label_columns, "Label columns (default: every other column)")
            ->delimiter(',');
        return [options] {
          const auto studies = data::csv_to_manifest(*options);
          std::cout << fmt::format("wrote {} studies to {}\n", studies, options->out);
          return 0;
        };
      }};
}

}  // namespace hlip::cli
