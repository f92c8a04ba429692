#include "hlip/model/windows.h"

#include <fmt/format.h>

#include "hlip/core/error.h"

namespace hlip::model {
namespace {

int rank(AttentionLevel level) {
  return static_cast<int>(level);
}

}  // namespace

int64_t windows_per_window(AttentionLevel fine, AttentionLevel coarse, int64_t num_scans,
                           int64_t depth_rows) {
  int64_t group = 1;
  if (rank(fine) <= rank(AttentionLevel::kSlice) && rank(coarse) >= rank(AttentionLevel::kScan))
    group *= depth_rows;
  if (rank(fine) <= rank(AttentionLevel::kScan) && rank(coarse) >= rank(AttentionLevel::kStudy))
    group *= num_scans;
  return group;
}

at::Tensor merge_windows(const at::Tensor& x, int64_t num_prefix, int64_t group) {
  const int64_t windows = x.size(0), tokens = x.size(1) - num_prefix, channels = x.size(2);
  if (group <= 0 || windows % group != 0) {
    throw Error(fmt::format("merge_windows: {} windows do not form groups of {}", windows, group));
  }
  const at::Tensor grouped = x.view({windows / group, group, num_prefix + tokens, channels});
  const at::Tensor prefix = grouped.narrow(2, 0, num_prefix).mean(1);
  const at::Tensor patches =
      grouped.narrow(2, num_prefix, tokens).reshape({windows / group, group * tokens, channels});
  return at::cat({prefix, patches}, 1);
}

at::Tensor split_windows(const at::Tensor& x, int64_t num_prefix, int64_t group) {
  const int64_t windows = x.size(0), tokens = x.size(1) - num_prefix, channels = x.size(2);
  if (group <= 0 || tokens % group != 0) {
    throw Error(fmt::format("split_windows: {} patch tokens per window do not split into {} equal runs",
                            tokens, group));
  }
  const at::Tensor prefix = x.narrow(1, 0, num_prefix)
                                .unsqueeze(1)
                                .expand({windows, group, num_prefix, channels})
                                .reshape({windows * group, num_prefix, channels});
  const at::Tensor patches =
      x.narrow(1, num_prefix, tokens).reshape({windows * group, tokens / group, channels});
  return at::cat({prefix, patches}, 1);
}

at::Tensor repartition(const at::Tensor& x, AttentionLevel from, AttentionLevel to, int64_t num_prefix,
                       int64_t num_scans, int64_t depth_rows) {
  if (from == to) return x;
  if (rank(from) < rank(to)) {
    return merge_windows(x, num_prefix, windows_per_window(from, to, num_scans, depth_rows));
  }
  return split_windows(x, num_prefix, windows_per_window(to, from, num_scans, depth_rows));
}

at::Tensor repartition_side(const at::Tensor& side, AttentionLevel from, AttentionLevel to, int64_t num_scans,
                            int64_t depth_rows) {
  if (from == to) return side;
  std::vector<int64_t> shape = side.sizes().vec();
  if (rank(from) < rank(to)) {
    const int64_t group = windows_per_window(from, to, num_scans, depth_rows);
    shape[0] /= group;
    shape[1] *= group;
  } else {
    const int64_t group = windows_per_window(to, from, num_scans, depth_rows);
    if (shape[1] % group != 0) {
      throw Error(
          fmt::format("repartition: {} tokens per window do not split into {} equal runs", shape[1], group));
    }
    shape[0] *= group;
    shape[1] /= group;
  }
  return side.reshape(shape);
}

}  // namespace hlip::model
