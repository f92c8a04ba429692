#include "hlip/model/inflate.h"

#include <cmath>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "hlip/core/error.h"
#include "hlip/model/clip.h"
#include "hlip/model/pos_embed.h"

namespace hlip::model {
namespace {

bool is_square(int64_t n) {
  const auto side = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(n))));
  return side * side == n;
}

}  // namespace

std::string to_string(PatchInflation inflation) {
  return inflation == PatchInflation::kAverage ? "average" : "central";
}

PatchInflation parse_patch_inflation(const std::string& name) {
  if (name == "average") return PatchInflation::kAverage;
  if (name == "central") return PatchInflation::kCentral;
  throw Error(fmt::format("patch inflation \"{}\": expected average or central", name));
}

std::map<std::string, at::Tensor> inflate_2d_state_dict(const std::map<std::string, at::Tensor>& state_2d,
                                                        const VisionOptions& options,
                                                        PatchInflation inflation) {
  options.validate();
  const auto require = [&](const std::string& key) -> const at::Tensor& {
    const auto it = state_2d.find(key);
    if (it == state_2d.end()) throw Error(fmt::format("2D checkpoint: key \"{}\" is missing", key));
    return it->second;
  };
  const auto check_shape = [](const std::string& key, const at::Tensor& t, int64_t dims, int64_t first,
                              int64_t last) {
    if (t.dim() != dims || (first >= 0 && t.size(0) != first) || t.size(-1) != last) {
      throw Error(fmt::format("2D checkpoint: \"{}\" has shape [{}], which does not fit width {}", key,
                              fmt::join(t.sizes(), ", "), last));
    }
  };
  const int64_t width = options.width;
  const auto [pd, ph, pw] = options.patch_size;
  const auto [d, h, w] = options.grid_size();
  std::map<std::string, at::Tensor> out;

  // The class row of a 2D position embedding (length not a square, e.g. MAE's 197) is folded into cls_token.
  at::Tensor cls = require("cls_token");
  at::Tensor pos = require("pos_embed");
  check_shape("cls_token", cls, 3, 1, width);
  check_shape("pos_embed", pos, 3, 1, width);
  cls = cls.clone();
  if (!is_square(pos.size(1))) {
    cls = cls + pos.narrow(1, 0, 1).to(cls.scalar_type());
    pos = pos.narrow(1, 1, pos.size(1) - 1);
  }
  if (!is_square(pos.size(1))) {
    throw Error(
        fmt::format("2D checkpoint: \"pos_embed\" has {} rows, not a square grid with or without a class row",
                    require("pos_embed").size(1)));
  }
  out["cls_token"] = cls;

  at::Tensor kernel = require("patch_embed.proj.weight");
  if (kernel.dim() != 4 || kernel.size(0) != width) {
    throw Error(fmt::format(
        "2D checkpoint: \"patch_embed.proj.weight\" has shape [{}], expected [{}, channels, kh, kw]",
        fmt::join(kernel.sizes(), ", "), width));
  }
  const auto dtype = kernel.scalar_type();
  kernel = kernel.to(at::kFloat);
  if (kernel.size(2) != ph || kernel.size(3) != pw) {
    kernel = at::upsample_bicubic2d(kernel, {ph, pw}, /*align_corners=*/false);
  }
  // Summing the input channels maps RGB weights onto a single-channel scan; depth inflation keeps the 2D
  // response for a depth-constant input.
  const at::Tensor summed = kernel.sum(1, /*keepdim=*/true).unsqueeze(2);  // [C, 1, 1, ph, pw]
  at::Tensor inflated;
  if (inflation == PatchInflation::kAverage) {
    inflated = summed.expand({width, 1, pd, ph, pw}) / static_cast<double>(pd);
  } else {
    inflated = at::zeros({width, 1, pd, ph, pw}, summed.options());
    inflated.narrow(2, pd / 2, 1).copy_(summed);
  }
  out["patch_embed.proj.weight"] = inflated.contiguous().to(dtype);
  const at::Tensor& bias = require("patch_embed.proj.bias");
  check_shape("patch_embed.proj.bias", bias, 1, width, width);
  out["patch_embed.proj.bias"] = bias.clone();

  out["spatial_posemb"] = spatial_from_2d(pos, d, h, w).to(pos.scalar_type());
  if (options.max_num_scans > 1) out["sequential_posemb"] = sequential_sincos(width, options.max_num_scans);

  for (const auto& [key, value] : state_2d) {
    if (key == "norm.weight" || key == "norm.bias") {
      out[key] = value.clone();
    } else if (key.rfind("blocks.", 0) == 0) {
      const int64_t index = std::stoll(key.substr(7, key.find('.', 7) - 7));
      if (index < options.depth) out[key] = value.clone();
    }
  }
  return out;
}

std::map<std::string, at::Tensor> trunk_to_2d_state_dict(const std::map<std::string, at::Tensor>& trunk) {
  const auto require = [&](const std::string& key) -> const at::Tensor& {
    const auto it = trunk.find(key);
    if (it == trunk.end()) throw Error(fmt::format("HLIP trunk: key \"{}\" is missing", key));
    return it->second;
  };
  std::map<std::string, at::Tensor> out;
  const at::Tensor& kernel = require("patch_embed.proj.weight");
  if (kernel.dim() != 5) {
    throw Error(
        fmt::format("HLIP trunk: \"patch_embed.proj.weight\" has shape [{}], expected a 3D kernel "
                    "[width, channels, pd, ph, pw]",
                    fmt::join(kernel.sizes(), ", ")));
  }
  out["patch_embed.proj.weight"] = kernel.to(at::kFloat).sum(2).to(kernel.scalar_type()).contiguous();
  out["patch_embed.proj.bias"] = require("patch_embed.proj.bias").clone();
  const at::Tensor& spatial = require("spatial_posemb");  // [1, d, h, w, C]
  if (spatial.dim() != 5 || spatial.size(2) != spatial.size(3)) {
    throw Error(fmt::format("HLIP trunk: \"spatial_posemb\" has shape [{}], expected [1, d, h, h, width]",
                            fmt::join(spatial.sizes(), ", ")));
  }
  out["pos_embed"] = spatial.to(at::kFloat)
                         .mean(1)
                         .reshape({1, spatial.size(2) * spatial.size(3), spatial.size(4)})
                         .to(spatial.scalar_type())
                         .contiguous();
  out["cls_token"] = require("cls_token").clone();
  for (const auto& [key, value] : trunk) {
    if (key.rfind("blocks.", 0) == 0 || key == "norm.weight" || key == "norm.bias") out[key] = value.clone();
  }
  return out;
}

std::map<std::string, at::Tensor> read_2d_source(const std::string& path) {
  auto tensors = read_model_weights(path);
  const std::string prefix = "visual.trunk.";
  if (tensors.count(prefix + "patch_embed.proj.weight") == 0) {
    if (tensors.count("patch_embed.proj.weight") == 0) {
      throw Error(fmt::format("{}: neither a timm 2D ViT (patch_embed.proj.weight) nor an HLIP model ({})",
                              path, prefix + "patch_embed.proj.weight"));
    }
    return tensors;
  }
  std::map<std::string, at::Tensor> trunk;
  for (auto& [key, value] : tensors) {
    if (key.rfind(prefix, 0) == 0) trunk.emplace(key.substr(prefix.size()), value);
  }
  try {
    return trunk_to_2d_state_dict(trunk);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path, e.what()));
  }
}

}  // namespace hlip::model
