// `hlip info` and `hlip convert`: what the volume readers see in a NIfTI file,
// a .npy array or a DICOM folder, and that volume written back out as NIfTI or
// .npy.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

#include "command.h"
#include "hlip/core/error.h"
#include "hlip/io/nifti.h"
#include "hlip/io/npy.h"
#include "hlip/io/volume.h"
#include "hlip/preprocess/orient.h"

namespace hlip::cli {
namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_nifti_name(const std::string& path) {
  return ends_with(path, ".nii") || ends_with(path, ".nii.gz");
}

nlohmann::json volume_json(const io::Volume& volume, int64_t volumes) {
  const auto codes = preprocess::orientation_codes(volume.affine);
  nlohmann::json affine = nlohmann::json::array();
  for (const auto& row : volume.affine)
    affine.push_back(std::vector<double>(row.begin(), row.end()));
  return {{"path", volume.source_path},
          {"shape", std::vector<int64_t>(volume.dims.begin(), volume.dims.end())},
          {"volumes", volumes},
          {"dtype", io::dtype_name(volume.stored_dtype)},
          {"spacing_mm", std::vector<double>(volume.spacing_mm.begin(), volume.spacing_mm.end())},
          {"orientation", std::string(codes.begin(), codes.end())},
          {"affine", affine},
          {"scale", {{"slope", volume.scale_slope}, {"inter", volume.scale_inter}}},
          {"description", volume.description}};
}

// Volumes along the fourth axis: from the NIfTI header, or the .npy shape; 1
// for DICOM series.
int64_t count_volumes(const std::string& path) {
  if (std::filesystem::is_directory(path)) return 1;
  if (ends_with(path, ".npy")) {
    const auto header = io::read_npy_header(path);
    return header.shape.size() == 4 ? header.shape[3] : 1;
  }
  if (ends_with(path, ".dcm")) return 1;
  return io::read_nifti_header(path).num_volumes();
}

}  // namespace

Command info_command() {
  return {"info",
          "Show a scan's shape, voxel type, spacing, orientation and affine "
          "(NIfTI, .npy, DICOM)",
          [](CLI::App& app) {
            auto path = std::make_shared<std::string>();
            auto json = std::make_shared<bool>(false);
            app.add_option("input", *path, "A .nii/.nii.gz/.npy file or a DICOM folder")->required();
            app.add_flag("--json", *json, "Print one JSON object");
            return [path, json] {
              const int64_t volumes = count_volumes(*path);
              const io::Volume volume = io::read_volume(*path, 0, io::VoxelValues::kStored);
              const auto info = volume_json(volume, volumes);
              if (*json) {
                std::cout << info.dump(2) << "\n";
                return 0;
              }
              std::cout << fmt::format(
                  "{}\n  shape        {}{}\n  voxel type   {}\n  spacing mm   {}\n"
                  "  orientation  {}\n  scaling      value = stored × {} + {}\n  "
                  "affine\n",
                  *path, fmt::join(volume.dims, " × "),
                  volumes > 1 ? fmt::format(" × {} volumes", volumes) : "", info["dtype"].get<std::string>(),
                  fmt::join(volume.spacing_mm, " × "), info["orientation"].get<std::string>(),
                  volume.scale_slope, volume.scale_inter);
              for (const auto& row : volume.affine) {
                std::cout << fmt::format("    [{:>10.4f} {:>10.4f} {:>10.4f} {:>10.4f}]\n", row[0], row[1],
                                         row[2], row[3]);
              }
              return 0;
            };
          }};
}

Command convert_command() {
  return {
      "convert",
      "Write a scan (NIfTI, .npy, DICOM) as NIfTI or .npy, optionally in "
      "closest RAS+ orientation",
      [](CLI::App& app) {
        auto input = std::make_shared<std::string>();
        auto output = std::make_shared<std::string>();
        auto canonical = std::make_shared<bool>(false);
        auto volume_index = std::make_shared<int64_t>(0);
        app.add_option("input", *input, "A .nii/.nii.gz/.npy file or a DICOM folder")->required();
        app.add_option("output", *output, "A .nii, .nii.gz or .npy file")->required();
        app.add_flag("--canonical", *canonical,
                     "Reorient to the closest RAS+ orientation (nibabel's "
                     "as_closest_canonical)");
        app.add_option("--volume", *volume_index, "The volume of a 4D input")->capture_default_str();
        return [input, output, canonical, volume_index] {
          if (!is_nifti_name(*output) && !ends_with(*output, ".npy")) {
            throw UsageError(fmt::format("output \"{}\": expected a .nii, .nii.gz or .npy name", *output));
          }
          io::Volume volume = io::read_volume(*input, *volume_index);
          if (*canonical) volume = preprocess::to_closest_canonical(volume);
          if (ends_with(*output, ".npy")) {
            io::write_npy(*output,
                          volume.data);  // float32, indexed [i, j, k] like get_fdata()
          } else {
            io::write_nifti(*output, volume);
          }
          std::cout << fmt::format("wrote {} ({}, float32)\n", *output, fmt::join(volume.dims, " × "));
          return 0;
        };
      }};
}

}  // namespace hlip::cli
