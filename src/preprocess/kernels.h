#pragma once
// Internal to preprocess: reading a volume's voxels in another axis order without intermediate copies.

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "hlip/io/volume.h"
#include "hlip/preprocess/orient.h"

namespace hlip::preprocess::detail {

// The volume's voxels as float32 with any pending scaling (VoxelValues::kStored) applied; a view of
// `volume.data` when nothing needs converting. Throws hlip::Error naming the file unless `data` is 3-D.
at::Tensor scaled_float_voxels(const io::Volume& volume);

// out[a][b][c] = src at the index whose mapping[0].axis coordinate is `a` (or first_axis_indices[a]),
// mapping[1].axis coordinate `b` and mapping[2].axis coordinate `c`, each reversed where the mapping says
// flip. `src` is float32 3-D with any strides; the result is contiguous. One pass, no temporaries.
at::Tensor gather_oriented(const at::Tensor& src, const AxisMapping& mapping,
                           const std::vector<int64_t>* first_axis_indices = nullptr);

// Throws hlip::Error "<name>: voxel (i, j, k) is NaN" (or inf) for the first non-finite voxel of `src`.
void require_finite(const at::Tensor& src, const std::string& name);

}  // namespace hlip::preprocess::detail
