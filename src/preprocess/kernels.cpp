#include "oriented_gather.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "hlip/core/error.h"

namespace hlip::preprocess::detail {

at::Tensor scaled_float_voxels(const io::Volume& volume) {
  if (!volume.data.defined() || volume.data.dim() != 3) {
    throw Error(fmt::format("{}: expected 3-D voxel data [I, J, K], got {} dims", volume.source_path,
                            volume.data.defined() ? volume.data.dim() : 0));
  }
  const bool scaled = volume.scale_slope != 1.0 || volume.scale_inter != 0.0;
  if (volume.data.scalar_type() == at::kFloat && !scaled) return volume.data;
  if (!scaled) return volume.data.to(at::kFloat);
  // As nibabel: scale in float64, then round once to float32.
  return (volume.data.to(at::kDouble) * volume.scale_slope + volume.scale_inter).to(at::kFloat);
}

at::Tensor gather_oriented(const at::Tensor& src, const AxisMapping& mapping,
                           const std::vector<int64_t>* first_axis_indices) {
  TORCH_CHECK(src.scalar_type() == at::kFloat && src.dim() == 3, "gather_oriented: float32 3-D input");
  std::array<int64_t, 3> size{}, step{};
  int64_t origin = 0;  // element offset of output voxel (0, 0, 0)
  for (int d = 0; d < 3; ++d) {
    const int a = mapping[d].axis;
    size[d] = src.size(a);
    step[d] = mapping[d].flip ? -src.stride(a) : src.stride(a);
    if (mapping[d].flip) origin += (size[d] - 1) * src.stride(a);
  }
  const int64_t depth = first_axis_indices ? static_cast<int64_t>(first_axis_indices->size()) : size[0];
  at::Tensor out =
      at::empty({depth, size[1], size[2]}, src.options().memory_format(at::MemoryFormat::Contiguous));
  const float* in = src.data_ptr<float>();
  float* dst = out.data_ptr<float>();
  const int64_t rows = size[1], cols = size[2], s1 = step[1], s2 = step[2];
  at::parallel_for(0, depth, 1, [&](int64_t begin, int64_t end) {
    for (int64_t o0 = begin; o0 < end; ++o0) {
      const int64_t i0 = first_axis_indices ? (*first_axis_indices)[o0] : o0;
      const float* plane = in + origin + i0 * step[0];
      float* out_plane = dst + o0 * rows * cols;
      for (int64_t r = 0; r < rows; ++r) {
        const float* line = plane + r * s1;
        float* out_line = out_plane + r * cols;
        if (s2 == 1) {
          std::memcpy(out_line, line, sizeof(float) * cols);
        } else {
          for (int64_t c = 0; c < cols; ++c)
            out_line[c] = line[c * s2];
        }
      }
    }
  });
  return out;
}

void require_finite(const at::Tensor& src, const std::string& name) {
  TORCH_CHECK(src.scalar_type() == at::kFloat && src.dim() == 3, "require_finite: float32 3-D input");
  // The fast check first: the sum of a finite scan of float32 values is finite (float32 max times any
  // plausible voxel count stays far below double's range).
  if (std::isfinite(src.sum(at::kDouble).item<double>())) return;
  const at::Tensor bad = (~at::isfinite(src)).nonzero();
  const at::Tensor first = bad[0];
  const float value = src.index({first[0], first[1], first[2]}).item<float>();
  throw Error(fmt::format("{}: voxel ({}, {}, {}) is {}", name, first[0].item<int64_t>(),
                          first[1].item<int64_t>(), first[2].item<int64_t>(),
                          std::isnan(value) ? "NaN" : (value > 0 ? "+inf" : "-inf")));
}

}  // namespace hlip::preprocess::detail
