// `hlip synth`: a synthetic dataset of brain MRI studies with reports and labels.
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/data/synth.h"

namespace hlip::cli {

Command synth_command() {
  return {"synth", "Write synthetic brain MRI studies (NIfTI), their reports, labels and manifest",
          [](CLI::App& app) {
            auto options = std::make_shared<data::SynthOptions>();
            auto size = std::make_shared<std::string>("small");
            auto modality = std::make_shared<std::string>("mri");
            auto splits =
                std::make_shared<std::vector<double>>(options->splits.begin(), options->splits.end());
            app.add_option("--out", options->out_dir, "Output folder")->required();
            app.add_option("--studies", options->studies, "Number of studies")->capture_default_str();
            app.add_option("--seed", options->seed, "Random seed; the same seed writes the same bytes")
                ->capture_default_str();
            app.add_option("--size", *size,
                           "small (about 48×48×24 voxels, for tests and the demo) or full (clinical)")
                ->check(CLI::IsMember({"small", "full"}))
                ->capture_default_str();
            app.add_option("--modality", *modality, "mri (CT studies are not generated yet)")
                ->check(CLI::IsMember({"mri"}))
                ->capture_default_str();
            app.add_option("--splits", *splits, "train,val,test shares")->delimiter(',')->expected(3);
            app.add_flag(
                "--no-progress", [options](int64_t) { options->progress = false; }, "Hide the progress bar");
            return [options, size, splits] {
              options->size = *size == "full" ? data::SynthSize::kFull : data::SynthSize::kSmall;
              std::copy(splits->begin(), splits->end(), options->splits.begin());
              const auto summary = data::write_synthetic_dataset(*options);
              std::string classes;
              for (const auto& [name, count] : summary.per_class)
                classes += fmt::format(" {} {},", name, count);
              if (!classes.empty()) classes.pop_back();
              std::cout << fmt::format("wrote {} studies ({} scans) to {} in {:.1f} s:{}\n", summary.studies,
                                       summary.scans, options->out_dir, summary.seconds, classes);
              return 0;
            };
          }};
}

}  // namespace hlip::cli
