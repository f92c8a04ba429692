#pragma once
// Where a preprocessed scan lies in the volume it came from, so that anything computed on the model grid
// (a relevance map, a segmentation) can be shown over the original scan.
//
//   auto volume = hlip::io::read_volume("t1.nii.gz");
//   auto preset = hlip::preprocess::preset_by_name("mri-brain");
//   hlip::io::Affine to_world = hlip::preprocess::model_voxel_to_world(volume, preset);
//   hlip::io::write_nifti("map_model_grid.nii.gz", map_dhw, to_world);          // overlays t1 in a viewer
//   at::Tensor on_source = hlip::preprocess::resample_to_source(map_dhw, volume, preset);   // [I, J, K]
//   hlip::io::write_nifti("map.nii.gz", on_source, volume.affine);                // t1's own grid
//
// Every step of preprocess_volume's geometry is affine along each axis: the axis permutation and flips of
// the orientation, the half-pixel resizes (resampling, in-plane bilinear, trilinear), centre pads and
// crops. Model voxel o of an axis resized from n to m voxels sits at source index (o + 0.5)·n/m − 0.5. The
// one step that is not affine, the nearest-exact depth pick of the "eval" geometry, takes the slice whose
// centre is nearest to that position, so the map places a picked slice within half a source slice.

#include <ATen/ATen.h>

#include "hlip/io/volume.h"
#include "hlip/preprocess/preset.h"

namespace hlip::preprocess {

// The affine from a voxel (d, h, w) of the [D, H, W] scans preprocess_volume(volume, preset) gives to the
// continuous voxel index (i, j, k) of `volume`.
io::Affine model_voxel_to_source_voxel(const io::Volume& volume, const Preset& preset);

// The same followed by `volume.affine`: a model voxel to world RAS+ millimetres.
io::Affine model_voxel_to_world(const io::Volume& volume, const Preset& preset);

// A float map [D, H, W] on the model grid sampled at every voxel of `volume`'s grid (trilinear between model
// voxel centres, the edge value up to the model grid's outer edge, 0 beyond it: voxels that preprocessing
// cropped away) -> float32 [I, J, K].
at::Tensor resample_to_source(const at::Tensor& map, const io::Volume& volume, const Preset& preset);

}  // namespace hlip::preprocess
