#pragma once
// Where a command computes: `--device cpu | cuda | cuda:N`, checked against this LibTorch and machine.
//
//   const c10::Device device = hlip::resolve_device(options.device, env.local_rank);
//   model->to(device);
//
// "cuda" without an index is the process's own GPU: cuda:LOCAL_RANK in data-parallel training (one GPU
// per worker, as torchrun jobs do), cuda:0 otherwise, and cuda:0 whenever the process sees exactly one GPU
// (Slurm jobs that give each task its own).

#include <c10/core/Device.h>

#include <string>

namespace hlip {

struct DeviceChoice {
  bool cuda = false;
  int index = 0;  // CUDA device index

  std::string text() const;  // "cpu", "cuda:1"
  bool operator==(const DeviceChoice& other) const { return cuda == other.cuda && index == other.index; }
};

// Parses `spec` ("cpu", "cuda", "cuda:N"); "cuda" becomes cuda:`local_rank`. A malformed value is a
// UsageError naming --device and the value.
DeviceChoice parse_device(const std::string& spec, int local_rank = 0);

// Whether `choice` can run here: a UsageError when the LibTorch was built without CUDA
// (`torch_has_cuda`), when no GPU is visible, or when the index is not below `cuda_devices`.
void check_device(const DeviceChoice& choice, const std::string& spec, bool torch_has_cuda, int cuda_devices);

// parse_device, "cuda" on the one visible GPU when there is exactly one, then check_device.
DeviceChoice choose_device(const std::string& spec, int local_rank, bool torch_has_cuda, int cuda_devices);

// choose_device against this process's LibTorch and GPUs.
c10::Device resolve_device(const std::string& spec, int local_rank = 0);

// Makes a CUDA `device` the process's current one (where LibTorch puts what names no device: pinned-memory
// bookkeeping, new streams); nothing for the CPU.
void use_as_current_device(const c10::Device& device);

}  // namespace hlip
