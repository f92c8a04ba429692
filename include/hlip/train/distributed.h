#pragma once
// Data-parallel training on LibTorch's own c10d (docs/distributed.md): a process group set up the way
// torchrun and Slurm start jobs, gradients averaged in buckets while the backward pass runs (as PyTorch's
// DDP does), and the feature gathers of open_clip's distributed contrastive loss.
//
//   auto env = hlip::train::dist_env_from_environment();      // RANK, WORLD_SIZE, ... or SLURM_*
//   auto group = hlip::train::ProcessGroup::connect(env, std::chrono::seconds(1800));
//   group->broadcast(parameters);                              // rank 0's weights everywhere
//   hlip::train::GradReducer reducer(*group, parameters);
//   reducer.prepare();  loss.backward();  reducer.finish();     // .grad now the mean over ranks
//
// One process per rank; Gloo carries CPU tensors. `hlip train --nproc-per-node N` starts N local workers
// itself (spawn_local_workers).

#include <ATen/ATen.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace hlip::train {

// Where this process stands in a job, from the environment.
struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string source = "none";  // "torchrun" (RANK/WORLD_SIZE), "slurm" (SLURM_PROCID/...) or "none"
  bool distributed() const { return world_size > 1; }
};

// torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), else Slurm's (SLURM_PROCID,
// SLURM_NTASKS, SLURM_LOCALID; MASTER_ADDR or the first host of SLURM_JOB_NODELIST), else one process. A bad
// value is an hlip::Error naming the variable and the value.
DistEnv dist_env_from_environment();

// The first host of a Slurm node list: "gpu[03-05,09],cpu1" → "gpu03".
std::string first_slurm_host(const std::string& nodelist);

// A c10d process group (Gloo) over a TCP store at MASTER_ADDR:MASTER_PORT that rank 0 serves. Every
// operation waits at most `timeout`; a peer that does not come, or dies, becomes an hlip::Error saying so.
class ProcessGroup {
 public:
  static std::unique_ptr<ProcessGroup> connect(const DistEnv& env, std::chrono::milliseconds timeout);
  ~ProcessGroup();
  ProcessGroup(const ProcessGroup&) = delete;
  ProcessGroup& operator=(const ProcessGroup&) = delete;

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // In place: rank `root`'s values everywhere.
  void broadcast(std::vector<at::Tensor> tensors, int root = 0);
  // In place: the sum over ranks.
  void all_reduce_sum(at::Tensor tensor);
  // Started, not waited for: the sum over ranks, in place. wait() it before reading.
  class Pending {
   public:
    virtual ~Pending() = default;
    virtual void wait() = 0;
  };
  std::unique_ptr<Pending> all_reduce_sum_async(at::Tensor tensor);
  // Every rank's `tensor` (equal shapes), concatenated along dimension 0 in rank order.
  at::Tensor all_gather(const at::Tensor& tensor);
  void barrier();

  struct Impl;

 private:
  ProcessGroup(int rank, int world_size, std::chrono::milliseconds timeout, std::unique_ptr<Impl> impl);
  int rank_;
  int world_size_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

// open_clip's gather of features for the contrastive loss: every rank's `local` [B, ...] concatenated in
// rank order [world·B, ...]. With `with_grad` (--gather-with-grad) the gradient flows back to every rank's
// features (the backward sums the gradients of all ranks' copies and keeps this rank's slice); without, the
// gathered copy carries no gradient except this rank's own rows, which are `local` itself.
at::Tensor gather_features(ProcessGroup& group, const at::Tensor& local, bool with_grad);

// Gradients averaged over ranks in buckets of about `bucket_bytes`, started from autograd hooks as soon as
// a bucket's last gradient is computed, so communication overlaps the rest of the backward pass. Buckets
// follow the reverse order of `parameters` (roughly the order gradients arrive) and always start in
// bucket order, the same on every rank; a parameter that got no gradient contributes zeros.
//
// `targets` (default: the parameters themselves) receive the averaged gradients in float32: for mixed
// precision, the hooked parameters are the bf16 compute copy and the targets the fp32 master weights.
class GradReducer {
 public:
  static constexpr int64_t kDefaultBucketBytes = 25 << 20;  // PyTorch DDP's bucket_cap_mb

  GradReducer(ProcessGroup& group, std::vector<at::Tensor> parameters, std::vector<at::Tensor> targets = {},
              int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradReducer();
  GradReducer(const GradReducer&) = delete;
  GradReducer& operator=(const GradReducer&) = delete;

  // Arms the hooks for the next backward pass (the last one of a step when gradients accumulate over
  // several): gradients already accumulated in .grad are included.
  void prepare();
  // After the backward pass: starts the buckets still waiting, waits for all, and sets every target's
  // gradient to the mean over ranks.
  void finish();
  int64_t buckets() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> members;  // indices into parameters_
    std::vector<int64_t> offsets;
    at::Tensor flat;  // float32
    size_t ready = 0;
    std::unique_ptr<ProcessGroup::Pending> pending;
  };
  void on_gradient(size_t index, const at::Tensor& grad);
  void launch_ready();

  ProcessGroup& group_;
  std::vector<at::Tensor> parameters_;
  std::vector<at::Tensor> targets_;
  std::vector<unsigned> hooks_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // parameter → bucket
  std::vector<size_t> slot_of_;    // parameter → its place among the bucket's members
  std::vector<bool> seen_;         // parameter got its gradient in this pass
  size_t next_launch_ = 0;
  bool armed_ = false;
};

// A TCP port on 127.0.0.1 that is free now (the kernel's pick), for a local job's MASTER_PORT.
int free_local_port();

// `hlip train --nproc-per-node N`: runs this same command line in N child processes with torchrun's
// variables set (MASTER_ADDR 127.0.0.1, a free port), each with 1/N of `threads` intra-op threads. Returns
// the exit status: 0 when all succeed, else the first failure's; when one worker fails the others are
// given `grace` to stop on their own (they see the broken group) and then terminated.
int spawn_local_workers(int nproc, int threads, std::chrono::milliseconds grace);

// For a command with `--nproc-per-node N`: in the launcher (N > 1 and no RANK in the environment) starts the
// workers and returns their exit status; in a worker sets its share of the threads and returns nothing, and
// the command goes on as rank RANK.
std::optional<int> launch_workers_if_asked(int64_t nproc_per_node, double timeout_seconds);

}  // namespace hlip::train
