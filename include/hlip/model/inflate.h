#pragma once
// 2D -> 3D initialisation of the HLIP trunk from a timm 2D ViT state dict (HLIP
// `custom_checkpoint_filter_fn`, spec 3.12): CLS fold, patch-kernel resize and depth inflation, 2D position
// embedding plus a depth sin-cos.
//
//   auto weights = hlip::model::inflate_2d_state_dict(mae_vit_b16, options, PatchInflation::kAverage);
//   // keys below visual.trunk: cls_token, patch_embed.proj.weight, spatial_posemb, blocks.0.*, ...

#include <map>
#include <string>

#include <ATen/ATen.h>

#include "hlip/model/vision.h"

namespace hlip::model {

// kAverage (used by HLIP): every depth tap = channel-summed 2D kernel / pd. kCentral (rejected ablation):
// tap pd/2 = channel-summed kernel, the others 0.
enum class PatchInflation { kAverage, kCentral };

std::string to_string(PatchInflation inflation);
PatchInflation parse_patch_inflation(const std::string& name);  // "average" | "central"

// Trunk weights (names relative to `visual.trunk.`) from a timm 2D ViT state dict with keys `cls_token`,
// `pos_embed`, `patch_embed.proj.weight/.bias`, `blocks.*`, `norm.*`; heads and other 2D-only keys are
// dropped. `sequential_posemb` (when max_num_scans > 1) gets its sin-cos value; `reg_token` is not produced.
// Throws hlip::Error for a missing key or a shape that does not fit `options`.
std::map<std::string, at::Tensor> inflate_2d_state_dict(const std::map<std::string, at::Tensor>& state_2d,
                                                        const VisionOptions& options,
                                                        PatchInflation inflation = PatchInflation::kAverage);

// The 2D ViT inside a trained HLIP trunk (names relative to `visual.trunk.`), in the timm 2D names that
// inflate_2d_state_dict reads: the patch kernel summed over its depth taps ([C, in, ph, pw]; for a patch
// depth of 1 this is the kernel itself, and it undoes kAverage), `spatial_posemb` averaged over depth as a
// square `pos_embed` [1, h*w, C] (h must equal w), cls_token, blocks.* and norm.*. This is how a sweep makes
// the 2D model of the 2D → 3D initialisation ablation: train on thin slabs (patch depth 1), then inflate.
std::map<std::string, at::Tensor> trunk_to_2d_state_dict(const std::map<std::string, at::Tensor>& trunk);

// The 2D source of `hlip train --init-2d PATH`: a timm 2D ViT safetensors file (keys as above), or an hlip
// model folder / model.safetensors / checkpoint (converted by trunk_to_2d_state_dict). Errors name the path.
std::map<std::string, at::Tensor> read_2d_source(const std::string& path);

}  // namespace hlip::model
