#pragma once
// Orientation: nibabel's closest-canonical (RAS+) reorientation, orientation codes, and HLIP's [D, H, W]
// axis order.
//
//   hlip::io::Volume vol = hlip::io::read_volume("t1.nii.gz");
//   hlip::preprocess::orientation_codes(vol.affine);               // e.g. {'L', 'P', 'S'}
//   hlip::io::Volume ras = hlip::preprocess::to_closest_canonical(vol);   // as nibabel.as_closest_canonical
//   auto scan = hlip::preprocess::to_hlip_axes(ras);               // scan.data: float32 [D, H, W]
//
// HLIP's axis rule (docs/preprocess.md has the derivation): HLIP's public-data scripts reorient every scan
// to RPI, take the [z, y, x] array, and make the axis with the largest spacing D (`transpose2dhw`). In the
// canonical RAS+ frame (i → R, j → A, k → S) that is:
//
//   largest spacing   D                  H                  W
//   k (axial)         k, reversed (S→I)  j, reversed (A→P)  i (L→R)
//   j (coronal)       j, reversed (A→P)  k, reversed (S→I)  i (L→R)
//   i (sagittal)      i (L→R)            k, reversed (S→I)  j, reversed (A→P)
//
// "Largest" allows for rounding in stored spacings: an axis whose spacing is within 0.1 % (relative) of
// the largest counts as tied, and ties go to k, then j, then i (so an isotropic scan is read axially, as
// HLIP's first-maximum argmax does for exact ties).

#include <ATen/ATen.h>

#include <array>

#include "hlip/io/volume.h"

namespace hlip::preprocess {

// Where one output axis reads its voxels: a source axis, optionally reversed.
struct AxisSource {
  int axis = 0;       // 0 = i, 1 = j, 2 = k of the source
  bool flip = false;  // output index n maps to source index size - 1 - n
};
using AxisMapping = std::array<AxisSource, 3>;

// nibabel's `io_orientation` inverted: for each canonical axis (R, A, S) the voxel axis of `affine` closest
// to it (polar decomposition of the direction matrix, then a greedy assignment in voxel-axis order).
// Throws hlip::Error when the affine has a degenerate (zero or collinear) voxel axis.
AxisMapping closest_canonical_mapping(const io::Affine& affine);

// Orientation codes like nibabel.aff2axcodes, e.g. {'R','A','S'}: the direction each voxel axis points to.
std::array<char, 3> orientation_codes(const io::Affine& affine);

// nibabel's as_closest_canonical: permute/flip voxel axes so the affine is closest to RAS+ (diagonal
// positive); returns a new Volume whose data is contiguous float32 [I, J, K] (still nibabel index order:
// data[i][j][k] equals nibabel's `as_closest_canonical(img).get_fdata()[i, j, k]`), whose affine equals
// nibabel's new `img.affine`, and whose spacing is the source spacing permuted alike. Scaling still pending
// in a VoxelValues::kStored volume is applied first.
io::Volume to_closest_canonical(const io::Volume& volume);

// HLIP's [D, H, W] axes for a canonical volume with spacing `canonical_spacing_mm` (along i, j, k): the rule
// in the table above.
AxisMapping hlip_axis_mapping(const std::array<double, 3>& canonical_spacing_mm);

// A canonical volume in HLIP's axis order.
struct OrientedScan {
  at::Tensor data;                     // float32 [D, H, W], contiguous
  std::array<double, 3> spacing_mm{};  // along D, H, W
  std::array<int, 3> source_axes{};    // which canonical axis (0 = i, 1 = j, 2 = k) became D, H, W
  std::array<bool, 3> flipped{};       // whether D, H, W run against that canonical axis
};

// Applies hlip_axis_mapping to `canonical`, which should come from to_closest_canonical; it is not
// reoriented again (for strongly oblique affines nibabel's canonical result need not read "RAS" itself, so
// there is nothing to check it against).
OrientedScan to_hlip_axes(const io::Volume& canonical);

// Source spacing along each output axis of `mapping`.
std::array<double, 3> mapped_spacing(const AxisMapping& mapping, const std::array<double, 3>& spacing_mm);

// The composition "first `inner`, then `outer`": outer reads inner's output axes.
AxisMapping compose(const AxisMapping& inner, const AxisMapping& outer);

}  // namespace hlip::preprocess
