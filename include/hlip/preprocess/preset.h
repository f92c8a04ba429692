#pragma once
// Preprocessing presets and the whole chain from a read volume to model-ready [D, H, W] scans.
//
//   auto volume = hlip::io::read_volume("study/ct.nii.gz");
//   auto preset = hlip::preprocess::preset_by_name("ct-head");      // brain, subdural and bone windows
//   for (const auto& scan : hlip::preprocess::preprocess_volume(volume, preset)) {
//     // scan.data: float32 [48, 224, 224] in [0, 1]; scan.suffix: "brain", "subdural", "bone"
//   }
//   nlohmann::json sidecar = hlip::preprocess::to_json(preset);     // every parameter, for the cache
//
// The chain (docs/preprocess.md): closest-canonical orientation → HLIP's [D, H, W] axes → optional
// resampling to `target_spacing_mm` (trilinear, half-pixel grid, CT-RATE's process.py) → intensity (MRI:
// percentile clip and min-max over the whole scan; CT: one scan per window) → geometry:
//   "crop"    centre pad (0) / crop to output_size (CT-RATE's "crop" loader)
//   "eval"    pad in-plane to square, bilinear to resize_size², nearest-exact depth to D, centre crop to
//             [H, W] (HLIP's evaluation loaders: Pub-Brain-5 with 256 → 224, CT-RATE 2026 "resize" with
//             384 → 336)
//   "resize"  pad in-plane to square, one trilinear resize to [D, resize_size, resize_size], centre crop
//             (CT-RATE v1 "resize", which is plain trilinear, when the scan is square and resize_size == H)
//
// Custom presets come from TOML (preset_from_toml); every key is optional except as noted:
//   base = "ct-head"                 # start from this preset (else from `modality`'s default preset)
//   name = "my-head-ct"              # default "custom"
//   modality = "ct"                  # "mri" | "ct"; required without `base`
//   geometry = "eval"                # "crop" | "resize" | "eval"
//   output_size = [48, 224, 224]     # D, H, W
//   resize_size = 256                # "eval" / "resize": in-plane size before the centre crop
//   target_spacing_mm = [3, 1, 1]    # D, H, W; omit to keep the source grid
//   percentile_low = 0.5             # MRI
//   percentile_high = 99.5
//   [[windows]]                      # CT; replaces the base preset's windows
//   name = "brain"                   # a named window ...
//   [[windows]]
//   name = "stroke"                  # ... or a new one, by level/width or min_hu/max_hu
//   level = 40
//   width = 40

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "hlip/io/volume.h"
#include "hlip/preprocess/intensity.h"

namespace hlip::preprocess {

struct Preset {
  std::string name = "custom";
  std::string modality = "mri";  // "mri" | "ct"
  // Resample (trilinear) to this spacing along D, H, W before intensity and geometry; none keeps the grid.
  std::optional<std::array<double, 3>> target_spacing_mm;
  std::string geometry = "eval";                     // "crop" | "resize" | "eval"
  std::array<int64_t, 3> output_size{48, 224, 224};  // D, H, W
  int64_t resize_size = 256;      // "eval" / "resize": the square in-plane size before the centre crop
  double percentile_low = 0.5;    // MRI: clip below this percentile ...
  double percentile_high = 99.5;  // ... and above this one, then min-max to [0, 1]
  std::vector<CtWindow> windows;  // CT: one output scan per window (empty for MRI)

  bool operator==(const Preset& other) const;
};

// "mri-brain" (48×224×224, eval geometry, 0.5–99.5 %), "ct-head" (brain/subdural/bone windows, 48×224×224
// eval geometry), "ct-chest" (3×1×1 mm, −1150..350 HU, 112×336×336 crop). hlip::Error lists the known
// names for any other.
Preset preset_by_name(const std::string& name);
std::vector<std::string> preset_names();

// What "auto" picks: mri → mri-brain, ct → ct-head.
Preset preset_for_modality(const std::string& modality);

// A custom preset from a TOML file (format above). Syntax errors, unknown keys and bad values are
// hlip::Errors naming the file, line, key and value.
Preset preset_from_toml(const std::string& path);

// Throws hlip::Error naming the preset and the offending field and value if `preset` cannot run.
void validate(const Preset& preset);

// Every parameter (all fields, including those the modality does not use), written next to prepared
// outputs; preset_from_json reads it back exactly (unknown keys and bad values are errors).
nlohmann::json to_json(const Preset& preset);
Preset preset_from_json(const nlohmann::json& json);

struct ProcessedScan {
  at::Tensor data;     // float32 [D, H, W] in [0, 1], contiguous
  std::string suffix;  // "" for MRI and single-window CT; the window name when a preset has several
};

// The whole chain: canonical → HLIP axes → resample/resize → intensity (→ several scans for several CT
// windows). Refuses (hlip::Error naming the file) scans with NaN/inf voxels or degenerate affines.
std::vector<ProcessedScan> preprocess_volume(const io::Volume& volume, const Preset& preset);

}  // namespace hlip::preprocess
