// `hlip synth`: a synthetic dataset of brain MRI and head CT studies with reports and labels.
#include <fmt/format.h>

#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/data/synth.h"

namespace hlip::cli {

Command synth_command() {
  return {
      "synth",
      "Write synthetic brain MRI and head CT studies (NIfTI, DICOM), their reports, labels and manifest",
      [](CLI::App& app) {
        auto options = std::make_shared<data::SynthOptions>();
        auto size = std::make_shared<std::string>("small");
        auto modality = std::make_shared<std::string>("mri");
        auto splits = std::make_shared<std::vector<double>>(options->splits.begin(), options->splits.end());
        app.add_option("--out", options->out_dir, "Output folder")->required();
        app.add_option("--studies", options->studies, "Number of studies")->capture_default_str();
        app.add_option("--seed", options->seed, "Random seed; the same seed writes the same bytes")
            ->capture_default_str();
        app.add_option("--size", *size,
                       "small (about 48×48×24 voxels, for tests and the demo) or full (clinical: MRI "
                       "256×256, CT 512×512)")
            ->check(CLI::IsMember({"small", "full"}))
            ->capture_default_str();
        app.add_option("--modality", *modality,
                       "mri, ct, or both (alternating: study 2m is mri-<m>, study 2m+1 is ct-<m>)")
            ->check(CLI::IsMember({"mri", "ct", "both"}))
            ->capture_default_str();
        app.add_option("--splits", *splits, "train,val,test shares")->delimiter(',')->expected(3);
        app.add_flag(
            "--no-progress", [options](int64_t) { options->progress = false; }, "Hide the progress bar");
        return [options, size, modality, splits] {
          options->size = *size == "full" ? data::SynthSize::kFull : data::SynthSize::kSmall;
          options->modality = *modality == "ct"     ? data::SynthModality::kCt
                              : *modality == "both" ? data::SynthModality::kBoth
                                                    : data::SynthModality::kMri;
          std::copy(splits->begin(), splits->end(), options->splits.begin());
          const auto summary = data::write_synthetic_dataset(*options);
          std::string classes;
          for (const auto& [name, count] : summary.per_class)
            classes += fmt::format(" {} {},", name, count);
          if (!classes.empty()) classes.pop_back();
          const std::string dicom =
              summary.dicom_series > 0 ? fmt::format(", {} as DICOM series", summary.dicom_series) : "";
          std::cout << fmt::format("wrote {} studies ({} scans{}) to {} in {:.1f} s:{}\n", summary.studies,
                                   summary.scans, dicom, options->out_dir, summary.seconds, classes);
          return 0;
        };
      }};
}

}  // namespace hlip::cli
