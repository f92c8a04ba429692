#include "hlip/model/vision_config.h"

#include <fmt/format.h>

#include "hlip/core/error.h"

namespace hlip::model {
namespace {

template <typename T>
T read(const nlohmann::json& object, const char* section, const char* key, T fallback) {
  const auto it = object.find(key);
  if (it == object.end() || it->is_null()) return fallback;
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(
        fmt::format("model config: {}.{} = {} has the wrong type ({})", section, key, it->dump(), e.what()));
  }
}

}  // namespace

VisionOptions vision_options_from_json(const nlohmann::json& model_cfg) {
  if (!model_cfg.is_object() || !model_cfg.contains("vision_cfg")) {
    throw Error("model config: model_cfg.vision_cfg is missing");
  }
  const nlohmann::json& vision = model_cfg.at("vision_cfg");
  VisionOptions o;
  if (vision.contains("hlip")) {
    const nlohmann::json& h = vision.at("hlip");
    const char* s = "vision_cfg.hlip";
    if (read<int64_t>(h, s, "in_chans", 1) != 1) {
      throw Error(
          fmt::format("model config: {}.in_chans = {}, only 1 is supported", s, h.at("in_chans").dump()));
    }
    o.width = read(h, s, "width", o.width);
    o.depth = read(h, s, "depth", o.depth);
    o.num_heads = read(h, s, "num_heads", o.num_heads);
    o.mlp_ratio = read(h, s, "mlp_ratio", o.mlp_ratio);
    o.norm_eps = read(h, s, "norm_eps", o.norm_eps);
    o.img_size = read(h, s, "img_size", o.img_size);
    o.patch_size = read(h, s, "patch_size", o.patch_size);
    o.reg_tokens = read(h, s, "reg_tokens", o.reg_tokens);
    o.max_num_scans = read(h, s, "max_num_scans", o.max_num_scans);
    const bool dinotxt = read(h, s, "global_pool_dinotxt", false);
    o.pooling = !dinotxt ? Pooling::kCls : o.reg_tokens == 1 ? Pooling::kDual : Pooling::kDinoTxt;
    o.attention_levels =
        attention_levels_from_indexes(o.depth, read(h, s, "slice_attn_indexes", std::vector<int64_t>{}),
                                      read(h, s, "scan_attn_indexes", std::vector<int64_t>{}),
                                      read(h, s, "study_attn_indexes", std::vector<int64_t>{}));
    const std::string init = read<std::string>(h, s, "spatial_posemb_init", "sincos1d+2d");
    // "mae2d" weights were built from a 2D checkpoint: the value ships in the weights, the formula is unused.
    o.spatial_posemb_init =
        init == "mae2d" ? SpatialPosEmbInit::kSinCos1d2d : parse_spatial_posemb_init(init);
    o.rope = read(h, s, "rope", false);
    o.grad_checkpointing = read(h, s, "grad_checkpointing", false);
    const std::string kernel = read<std::string>(h, s, "attention_kernel", "fused");
    if (kernel != "fused" && kernel != "plain") {
      throw Error(
          fmt::format("model config: {}.attention_kernel = \"{}\", expected fused or plain", s, kernel));
    }
    o.attention_kernel = kernel == "plain" ? AttentionKernel::kPlain : AttentionKernel::kFused;
  } else if (vision.contains("timm_model_name")) {
    o = vision_options_for(read<std::string>(vision, "vision_cfg", "timm_model_name", ""));
  } else {
    throw Error("model config: vision_cfg has neither a \"hlip\" block nor a \"timm_model_name\"");
  }
  o.drop_path = read(vision, "vision_cfg", "timm_drop_path", o.drop_path);
  o.patch_dropout = read(vision, "vision_cfg", "patch_dropout", o.patch_dropout);
  o.embed_dim = read(model_cfg, "model_cfg", "embed_dim", o.embed_dim);
  o.validate();
  return o;
}

nlohmann::json vision_options_to_json(const VisionOptions& o) {
  std::vector<int64_t> slice, scan, study;
  for (size_t i = 0; i < o.attention_levels.size(); ++i) {
    const auto index = static_cast<int64_t>(i);
    switch (o.attention_levels[i]) {
      case AttentionLevel::kSlice:
        slice.push_back(index);
        break;
      case AttentionLevel::kScan:
        scan.push_back(index);
        break;
      case AttentionLevel::kStudy:
        study.push_back(index);
        break;
    }
  }
  nlohmann::json hlip = {
      {"img_size", o.img_size},
      {"patch_size", o.patch_size},
      {"in_chans", 1},
      {"width", o.width},
      {"depth", o.depth},
      {"num_heads", o.num_heads},
      {"mlp_ratio", o.mlp_ratio},
      {"norm_eps", o.norm_eps},
      {"reg_tokens", o.reg_tokens},
      {"global_pool_dinotxt", o.pooling != Pooling::kCls},
      {"slice_attn_indexes", slice},
      {"scan_attn_indexes", scan},
      {"study_attn_indexes", study},
      {"max_num_scans", o.max_num_scans},
      {"spatial_posemb_init", to_string(o.spatial_posemb_init)},
      {"rope", o.rope},
      {"grad_checkpointing", o.grad_checkpointing},
      {"attention_kernel", o.attention_kernel == AttentionKernel::kPlain ? "plain" : "fused"}};
  nlohmann::json vision = {{"timm_pool", "token"},
                           {"timm_proj", "linear"},
                           {"timm_proj_bias", false},
                           {"timm_drop_path", o.drop_path},
                           {"patch_dropout", o.patch_dropout},
                           {"hlip", hlip}};
  return {{"embed_dim", o.embed_dim}, {"vision_cfg", vision}};
}

}  // namespace hlip::model
