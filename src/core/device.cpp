#include "hlip/core/device.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <cctype>

#include "hlip/core/error.h"

namespace hlip {

std::string DeviceChoice::text() const {
  return cuda ? fmt::format("cuda:{}", index) : "cpu";
}

DeviceChoice parse_device(const std::string& spec, int local_rank) {
  if (spec == "cpu") return {};
  if (spec == "cuda") return {true, local_rank};
  const std::string prefix = "cuda:";
  if (spec.rfind(prefix, 0) == 0 && spec.size() > prefix.size() && spec.size() <= prefix.size() + 4) {
    int index = 0;
    for (size_t i = prefix.size(); i < spec.size(); ++i) {
      if (!std::isdigit(static_cast<unsigned char>(spec[i]))) index = -1;
      if (index >= 0) index = index * 10 + (spec[i] - '0');
    }
    if (index >= 0) return {true, index};
  }
  throw UsageError(fmt::format("--device \"{}\" is not cpu, cuda or cuda:N", spec));
}

void check_device(const DeviceChoice& choice, const std::string& spec, bool torch_has_cuda,
                  int cuda_devices) {
  if (!choice.cuda) return;
  if (!torch_has_cuda) {
    throw UsageError(fmt::format(
        "--device {}: this hlip's LibTorch has no CUDA (build against a CUDA LibTorch, docs/building.md; "
        "`hlip version` lists the devices)",
        spec));
  }
  if (cuda_devices == 0)
    throw UsageError(fmt::format("--device {}: no CUDA device is visible (CUDA_VISIBLE_DEVICES?)", spec));
  if (choice.index >= cuda_devices) {
    throw UsageError(fmt::format("--device {}: {} is not one of the {} visible CUDA device{} (cuda:0..{})",
                                 spec, choice.text(), cuda_devices, cuda_devices == 1 ? "" : "s",
                                 cuda_devices - 1));
  }
}

DeviceChoice choose_device(const std::string& spec, int local_rank, bool torch_has_cuda, int cuda_devices) {
  DeviceChoice choice = parse_device(spec, local_rank);
  if (spec == "cuda" && cuda_devices == 1) choice.index = 0;
  check_device(choice, spec, torch_has_cuda, cuda_devices);
  return choice;
}

c10::Device resolve_device(const std::string& spec, int local_rank) {
  bool torch_has_cuda = false;
#ifdef HLIP_WITH_CUDA
  torch_has_cuda = true;
#endif
  const int devices =
      spec != "cpu" && torch::cuda::is_available() ? static_cast<int>(torch::cuda::device_count()) : 0;
  const DeviceChoice choice = choose_device(spec, local_rank, torch_has_cuda, devices);
  return choice.cuda ? c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(choice.index))
                     : c10::Device(c10::kCPU);
}

void use_as_current_device(const c10::Device& device) {
  if (device.is_cuda()) c10::impl::getDeviceGuardImpl(c10::kCUDA)->setDevice(device);
}

}  // namespace hlip
