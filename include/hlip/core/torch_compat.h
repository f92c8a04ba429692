#pragma once
// Differences between the LibTorch versions hlip builds against (Debian's 1.13 and 2.x), in one place.

#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
// at::scaled_dot_product_attention, with flash / memory-efficient kernels on GPU and a fused CPU kernel.
#define HLIP_TORCH_HAS_FUSED_SDPA 1
#else
#define HLIP_TORCH_HAS_FUSED_SDPA 0
#endif
