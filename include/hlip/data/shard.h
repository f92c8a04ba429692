#pragma once
// A share of the evaluation data for one process of a data-parallel job (docs/distributed.md): process
// `rank` of `count` takes studies rank, rank + count, rank + 2·count, ... of the data order, and `gather`
// (an all-gather along dimension 0 of equal-shaped tensors, in rank order) brings the shares back together.
// The default is the whole data in one process.
//
//   hlip::data::Shard shard{group.rank(), group.world_size(),
//                           [&](const at::Tensor& t) { return group.all_gather(t); }};
//   options.shard = shard;   // eval::EmbedOptions, eval::ZeroShotOptions

#include <ATen/ATen.h>

#include <functional>

namespace hlip::data {

struct Shard {
  int rank = 0;
  int count = 1;
  std::function<at::Tensor(const at::Tensor&)> gather;
  bool active() const { return count > 1; }
};

}  // namespace hlip::data
