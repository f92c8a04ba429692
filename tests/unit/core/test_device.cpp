// --device: parsing, the checks against the LibTorch and the visible GPUs, and what this machine resolves.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include <string>

#include "hlip/core/device.h"
#include "hlip/core/error.h"
#include "temp_dir.h"

namespace hlip {
namespace {

using test::error_message;

TEST(Device, ParsesCpuCudaAndAnIndex) {
  EXPECT_EQ(parse_device("cpu"), DeviceChoice{});
  EXPECT_EQ(parse_device("cpu", 3), DeviceChoice{});
  EXPECT_EQ(parse_device("cuda"), (DeviceChoice{true, 0}));
  // Data-parallel workers each take their own GPU: cuda means cuda:LOCAL_RANK.
  EXPECT_EQ(parse_device("cuda", 3), (DeviceChoice{true, 3}));
  EXPECT_EQ(parse_device("cuda:1", 3), (DeviceChoice{true, 1}));
  EXPECT_EQ(parse_device("cuda:12").index, 12);
  EXPECT_EQ(parse_device("cuda:2").text(), "cuda:2");
  EXPECT_EQ(parse_device("cpu").text(), "cpu");
}

TEST(Device, MalformedValuesNameTheFlagAndTheValue) {
  for (const std::string bad : {"gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda:12345", ""}) {
    EXPECT_THROW(parse_device(bad), UsageError) << bad;
    const std::string message = error_message([&] { parse_device(bad); });
    EXPECT_NE(message.find("--device \"" + bad + "\""), std::string::npos) << bad << ": " << message;
    EXPECT_NE(message.find("cpu, cuda or cuda:N"), std::string::npos) << message;
  }
}

TEST(Device, ChecksTheLibTorchAndTheVisibleGpus) {
  const DeviceChoice cpu{}, first{true, 0}, third{true, 2};
  EXPECT_NO_THROW(check_device(cpu, "cpu", false, 0));
  EXPECT_NO_THROW(check_device(third, "cuda:2", true, 3));
  EXPECT_NE(error_message([&] { check_device(first, "cuda", false, 0); }).find("has no CUDA"),
            std::string::npos);
  EXPECT_NE(error_message([&] { check_device(first, "cuda", true, 0); }).find("no CUDA device is visible"),
            std::string::npos);
  const std::string message = error_message([&] { check_device(third, "cuda:2", true, 2); });
  EXPECT_NE(message.find("--device cuda:2: cuda:2 is not one of the 2 visible CUDA devices (cuda:0..1)"),
            std::string::npos)
      << message;
}

TEST(Device, CudaIsTheOnlyVisibleGpuOrTheLocalRanksOne) {
  // torchrun on a machine with 4 GPUs: worker 2 takes cuda:2; an explicit index is kept.
  EXPECT_EQ(choose_device("cuda", 2, true, 4), (DeviceChoice{true, 2}));
  EXPECT_EQ(choose_device("cuda:1", 2, true, 4), (DeviceChoice{true, 1}));
  // Slurm with one GPU per task: every task sees its own as cuda:0, whatever its local rank.
  EXPECT_EQ(choose_device("cuda", 3, true, 1), (DeviceChoice{true, 0}));
  EXPECT_THROW(choose_device("cuda:3", 3, true, 1), UsageError);
  EXPECT_THROW(choose_device("cuda", 4, true, 4), UsageError);
  EXPECT_EQ(choose_device("cpu", 3, false, 0), DeviceChoice{});
  EXPECT_NE(error_message([] { choose_device("cuda", 0, false, 0); }).find("has no CUDA"), std::string::npos);
}

TEST(Device, ResolvesOnThisMachine) {
  EXPECT_TRUE(resolve_device("cpu").is_cpu());
  if (torch::cuda::is_available()) {
    const c10::Device gpu = resolve_device("cuda:0");
    EXPECT_TRUE(gpu.is_cuda());
    EXPECT_EQ(gpu.index(), 0);
  } else {
    EXPECT_THROW(resolve_device("cuda"), UsageError);
  }
}

}  // namespace
}  // namespace hlip
