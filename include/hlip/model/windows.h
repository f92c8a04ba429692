#pragma once
// Token layouts of the hierarchical ViT (spec 3.5, 3.6). Tokens are rows of `[windows, P + T, C]`; a block
// attends densely inside each window. Windows are ordered (b, n, z) row-major, so coarser levels are runs of
// consecutive finer windows:
//
//   x = merge_windows(x, /*num_prefix=*/2, /*group=*/num_scans);   // scan -> study: prefix tokens averaged
//   x = split_windows(x, 2, num_scans);                             // study -> scan: prefix tokens copied

#include <cstdint>

#include <ATen/ATen.h>

namespace hlip::model {

// Window over which a block attends: one depth row of patches of one scan, one scan, or the whole study.
enum class AttentionLevel { kSlice, kScan, kStudy };

// Number of finer windows in one window of `coarse` (e.g. slice -> study: num_scans * depth_rows).
int64_t windows_per_window(AttentionLevel fine, AttentionLevel coarse, int64_t num_scans, int64_t depth_rows);

// Groups of `group` consecutive windows become one: prefix tokens are their mean, patch tokens concatenated.
at::Tensor merge_windows(const at::Tensor& x, int64_t num_prefix, int64_t group);
// Each window's patch tokens are cut into `group` equal runs, each run a window with a copy of the prefix
// tokens.
at::Tensor split_windows(const at::Tensor& x, int64_t num_prefix, int64_t group);
// merge or split from level `from` to level `to` (identity when equal).
at::Tensor repartition(const at::Tensor& x, AttentionLevel from, AttentionLevel to, int64_t num_prefix,
                       int64_t num_scans, int64_t depth_rows);

// The same re-partitions for per-token side data without prefix tokens ([windows, T, ...], e.g. RoPE
// positions).
at::Tensor repartition_side(const at::Tensor& side, AttentionLevel from, AttentionLevel to, int64_t num_scans,
                            int64_t depth_rows);

}  // namespace hlip::model
