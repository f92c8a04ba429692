#pragma once
// VisionOptions <-> open_clip model config JSON (spec section 9): `model_cfg.embed_dim`, the open_clip timm
// keys of `model_cfg.vision_cfg` and its `hlip` block of architecture knobs.
//
//   auto cfg = nlohmann::json::parse(std::ifstream(dir + "/open_clip_config.json"));
//   hlip::model::VisionOptions options = hlip::model::vision_options_from_json(cfg.at("model_cfg"));
//   std::ofstream(run_dir + "/vision.json") << hlip::model::vision_options_to_json(options).dump(2);

#include <nlohmann/json.hpp>

#include "hlip/model/vision.h"

namespace hlip::model {

// `model_cfg` = {"embed_dim", "vision_cfg": {"timm_model_name", "timm_drop_path", "patch_dropout", "hlip":
// {...}}}. Without a `hlip` block, a published `timm_model_name` resolves through vision_options_for(). Keys
// of the `hlip` block: img_size, patch_size, in_chans (must be 1), width, depth, num_heads, mlp_ratio,
// norm_eps, reg_tokens, global_pool_dinotxt, slice/scan/study_attn_indexes, max_num_scans,
// spatial_posemb_init; plus the hlip-only knobs rope, grad_checkpointing, attention_kernel ("fused" |
// "plain"). Throws hlip::Error naming the key for a missing or ill-typed value.
VisionOptions vision_options_from_json(const nlohmann::json& model_cfg);

// The inverse, in the same shape (every knob written out), for run folders and exported models.
nlohmann::json vision_options_to_json(const VisionOptions& options);

}  // namespace hlip::model
