#include "hlip/preprocess/orient.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "hlip/core/error.h"
#include "kernels.h"

namespace hlip::preprocess {
namespace {

// nibabel's io_orientation: for each voxel axis, the closest world axis (0 = x, 1 = y, 2 = z) and its sign,
// or axis -1 where the affine leaves the voxel axis undetermined.
struct VoxelAxisOrientation {
  int world_axis = -1;
  int sign = 1;
};

std::array<VoxelAxisOrientation, 3> io_orientation(const io::Affine& affine) {
  // Column-normalised direction matrix (zero columns stay zero), as nibabel.
  at::Tensor rs = at::empty({3, 3}, at::kDouble);
  auto r = rs.accessor<double, 2>();
  for (int c = 0; c < 3; ++c) {
    double norm = 0;
    for (int row = 0; row < 3; ++row)
      norm += affine[row][c] * affine[row][c];
    norm = norm == 0 ? 1.0 : std::sqrt(norm);
    for (int row = 0; row < 3; ++row)
      r[row][c] = affine[row][c] / norm;
  }
  if (!at::isfinite(rs).all().item<bool>()) throw Error("cannot orient: the affine has non-finite entries");
  // The closest orthogonal matrix (polar factor) over the singular values above nibabel's tolerance.
  auto [u, s, vh] = at::linalg_svd(rs, /*full_matrices=*/false);
  const double tol = s.max().item<double>() * 3 * std::numeric_limits<double>::epsilon();
  const at::Tensor keep = s > tol;
  at::Tensor closest = at::matmul(u.index({at::indexing::Slice(), keep}), vh.index({keep}));
  auto q = closest.accessor<double, 2>();
  std::array<VoxelAxisOrientation, 3> ornt{};
  for (int in_ax = 0; in_ax < 3; ++in_ax) {
    bool all_zero = true;
    for (int row = 0; row < 3; ++row)
      all_zero = all_zero && std::abs(q[row][in_ax]) <= 1e-8;  // np.allclose(col, 0)
    if (all_zero) continue;
    int out_ax = 0;
    for (int row = 1; row < 3; ++row) {
      if (std::abs(q[row][in_ax]) > std::abs(q[out_ax][in_ax])) out_ax = row;  // first maximum, as argmax
    }
    ornt[in_ax] = {out_ax, q[out_ax][in_ax] < 0 ? -1 : 1};
    for (int c = 0; c < 3; ++c)
      q[out_ax][c] = 0;  // that world axis is taken
  }
  return ornt;
}

std::array<VoxelAxisOrientation, 3> checked_io_orientation(const io::Affine& affine) {
  const auto ornt = io_orientation(affine);
  for (int a = 0; a < 3; ++a) {
    if (ornt[a].world_axis < 0) {
      throw Error(fmt::format(
          "cannot orient: voxel axis {} has no direction (a zero or collinear affine column)", "ijk"[a]));
    }
  }
  return ornt;
}

}  // namespace

AxisMapping closest_canonical_mapping(const io::Affine& affine) {
  const auto ornt = checked_io_orientation(affine);
  AxisMapping mapping{};
  for (int in_ax = 0; in_ax < 3; ++in_ax)
    mapping[ornt[in_ax].world_axis] = {in_ax, ornt[in_ax].sign < 0};
  return mapping;
}

std::array<char, 3> orientation_codes(const io::Affine& affine) {
  static constexpr char kLabels[3][2] = {{'L', 'R'}, {'P', 'A'}, {'I', 'S'}};
  const auto ornt = checked_io_orientation(affine);
  std::array<char, 3> codes{};
  for (int a = 0; a < 3; ++a)
    codes[a] = kLabels[ornt[a].world_axis][ornt[a].sign > 0 ? 1 : 0];
  return codes;
}

io::Volume to_closest_canonical(const io::Volume& volume) {
  std::array<VoxelAxisOrientation, 3> ornt{};
  try {
    ornt = checked_io_orientation(volume.affine);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", volume.source_path.empty() ? "volume" : volume.source_path, e.what()));
  }
  AxisMapping mapping{};
  for (int in_ax = 0; in_ax < 3; ++in_ax)
    mapping[ornt[in_ax].world_axis] = {in_ax, ornt[in_ax].sign < 0};

  io::Volume out = volume;
  out.data = detail::gather_oriented(detail::scaled_float_voxels(volume), mapping);
  out.scale_slope = 1.0;
  out.scale_inter = 0.0;
  for (int o = 0; o < 3; ++o) {
    out.dims[o] = out.data.size(o);
    out.spacing_mm[o] = volume.spacing_mm[mapping[o].axis];
  }
  // nibabel: new_affine = affine · inv_ornt_aff(ornt, shape), i.e. flip the reversed axes about their
  // centre, then reorder. Written as that product so the rounding follows nibabel's.
  io::Affine inverse{};
  inverse[3][3] = 1.0;
  for (int in_ax = 0; in_ax < 3; ++in_ax) {
    const double flip = ornt[in_ax].sign;
    const double centre = -(static_cast<double>(volume.data.size(in_ax)) - 1.0) / 2.0;
    inverse[in_ax][ornt[in_ax].world_axis] = flip;
    inverse[in_ax][3] = flip * centre - centre;
  }
  for (int row = 0; row < 4; ++row) {
    for (int col = 0; col < 4; ++col) {
      double sum = 0;
      for (int k = 0; k < 4; ++k)
        sum += volume.affine[row][k] * inverse[k][col];
      out.affine[row][col] = sum;
    }
  }
  return out;
}

AxisMapping hlip_axis_mapping(const std::array<double, 3>& canonical_spacing_mm) {
  const double largest = *std::max_element(canonical_spacing_mm.begin(), canonical_spacing_mm.end());
  int depth_axis = 0;
  for (int axis : {2, 1, 0}) {
    if (canonical_spacing_mm[axis] >= largest * (1.0 - 1e-3)) {
      depth_axis = axis;
      break;
    }
  }
  // RPI, read as [z, y, x], then HLIP's transpose2dhw (see the header's table).
  switch (depth_axis) {
    case 2:
      return {AxisSource{2, true}, AxisSource{1, true}, AxisSource{0, false}};
    case 1:
      return {AxisSource{1, true}, AxisSource{2, true}, AxisSource{0, false}};
    default:
      return {AxisSource{0, false}, AxisSource{2, true}, AxisSource{1, true}};
  }
}

OrientedScan to_hlip_axes(const io::Volume& canonical) {
  const AxisMapping mapping = hlip_axis_mapping(canonical.spacing_mm);
  OrientedScan scan;
  scan.data = detail::gather_oriented(detail::scaled_float_voxels(canonical), mapping);
  scan.spacing_mm = mapped_spacing(mapping, canonical.spacing_mm);
  for (int d = 0; d < 3; ++d) {
    scan.source_axes[d] = mapping[d].axis;
    scan.flipped[d] = mapping[d].flip;
  }
  return scan;
}

std::array<double, 3> mapped_spacing(const AxisMapping& mapping, const std::array<double, 3>& spacing_mm) {
  return {spacing_mm[mapping[0].axis], spacing_mm[mapping[1].axis], spacing_mm[mapping[2].axis]};
}

AxisMapping compose(const AxisMapping& inner, const AxisMapping& outer) {
  AxisMapping out{};
  for (int d = 0; d < 3; ++d) {
    const AxisSource& via = inner[outer[d].axis];
    out[d] = {via.axis, via.flip != outer[d].flip};
  }
  return out;
}

}  // namespace hlip::preprocess
