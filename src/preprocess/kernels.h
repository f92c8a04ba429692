#pragma once
// Internal to preprocess: the loops behind the public functions, on raw float32 buffers, so the fused
// chain in pipeline.cpp can run them plane by plane in small reused buffers. The public functions call the
// same loops, which keeps the fused chain's values identical to the step-by-step ones.

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "hlip/io/volume.h"
#include "hlip/preprocess/intensity.h"
#include "hlip/preprocess/orient.h"

namespace hlip::preprocess::detail {

// The volume's voxels as float32 with any pending scaling (VoxelValues::kStored) applied; a view of
// `volume.data` when nothing needs converting. Throws hlip::Error unless `data` is 3-D.
at::Tensor scaled_float_voxels(const io::Volume& volume);

// A 1-D view of a tensor's values in memory order (the tensor itself when its memory is dense in any stride
// order, such as a NIfTI volume's Fortran layout; a contiguous float32 copy otherwise): order-free
// reductions (min/max, percentiles) over it run at streaming speed.
at::Tensor flat_float(const at::Tensor& values);
// The same view in the tensor's own dtype.
at::Tensor flat_dense(const at::Tensor& values);

// Throws hlip::Error "<name>: voxel (i, j, k) is NaN" (or ±inf) for the first non-finite voxel of `src`.
void require_finite(const at::Tensor& src, const std::string& name);

// The integer voxel types preprocessing reads as they are (uint8, int8, int16, and int32 for uint16 voxels):
// every value is its own float32.
bool is_integer_voxel_type(at::ScalarType type);

// The voxels preprocessing reads: `volume.data` itself when it holds integers with no scaling pending (the
// readers' VoxelValues::kCompact or kStored; every value is its own float32, and integers cannot be NaN),
// otherwise scaled_float_voxels(volume) checked by require_finite. Throws hlip::Error unless `data` is 3-D.
at::Tensor source_voxels(const io::Volume& volume);

// A 3-D tensor (float32, or the integer types source_voxels passes through: uint8, int8, int16, int32) read
// in another axis order as float32: output axis d walks source axis mapping[d].axis, reversed where
// mapping[d].flip.
class OrientedSource {
 public:
  OrientedSource(const at::Tensor& src, const AxisMapping& mapping);
  const std::array<int64_t, 3>& sizes() const { return size_; }
  // Plane `index` of output axis 0: size()[1] rows of size()[2] values, written `dst_row_stride` apart.
  void copy_plane(int64_t index, float* dst, int64_t dst_row_stride) const;

 private:
  template <typename T>
  void copy_plane_as(int64_t index, float* dst, int64_t dst_row_stride) const;

  const void* data_;
  at::ScalarType type_;
  std::array<int64_t, 3> size_{};
  std::array<int64_t, 3> step_{};
  int64_t origin_ = 0;
};

// All planes (or those listed in `first_axis_indices`) of `src` read through `mapping`, contiguous float32.
at::Tensor gather_oriented(const at::Tensor& src, const AxisMapping& mapping,
                           const std::vector<int64_t>* first_axis_indices = nullptr);

// The pointwise intensity maps (see intensity.h for the arithmetic).
void clip_and_rescale(const float* src, float* dst, int64_t n, const IntensityRange& range);
void apply_window(const float* src, float* dst, int64_t n, const CtWindow& window);

// One axis of torch's bilinear resize (align_corners=False) from `input` to `output` samples, for outputs
// first .. first + count − 1: source indices and weights, computed as ATen computes them.
struct LinearAxis {
  std::vector<int64_t> index0, index1;
  std::vector<float> weight0, weight1;
};
LinearAxis linear_axis(int64_t input, int64_t output, int64_t first, int64_t count);

// One plane (`src`, rows of `src_row_stride` values) resized bilinearly: dst[r][c] for the rows and columns
// of `rows` and `cols`, written contiguously.
void bilinear_plane(const float* src, int64_t src_row_stride, const LinearAxis& rows, const LinearAxis& cols,
                    float* dst);

}  // namespace hlip::preprocess::detail
