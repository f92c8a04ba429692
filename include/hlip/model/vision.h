#pragma once
// The HLIP vision tower: open_clip's `visual` (TimmModel) = `trunk` (hierarchical 3D ViT) + `head`
// (projection). Registered names equal the open_clip / timm state-dict keys below `visual.` (spec section 7),
// so a released checkpoint loads by name:
//
//   auto options = hlip::model::vision_options_for("vit_base_scan_study_dualdinotxt1568");
//   hlip::model::VisionTower visual(options);  // trunk.blocks.0.attn.qkv.weight, head.proj.weight, ...
//   visual->eval();
//   at::Tensor embeds = visual(image);         // image [B, N, 1, D, H, W] -> [B, P, E]
//
// Every ablation knob of the HLIP study is a field of VisionOptions (see docs/model.md).

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "hlip/model/attention.h"
#include "hlip/model/patch_embed.h"
#include "hlip/model/windows.h"

namespace hlip::model {

// Features handed to the head (spec 3.9). kCls: CLS token, [B, 1, C]. kDinoTxt: every prefix token
// concatenated with the mean of the patch tokens, [B, P, 2C]. kDual: kDinoTxt with CLS + one register token
// (P = 2); row 0 is the sentence embedding, row 1 the report embedding.
enum class Pooling { kCls, kDinoTxt, kDual };

// How the spatial sin-cos embedding is built from scratch (spec 3.3.1 / 3.3.2). Released weights carry the
// value.
enum class SpatialPosEmbInit { kSinCos3d, kSinCos1d2d };

std::string to_string(AttentionLevel level);
std::string to_string(Pooling pooling);
std::string to_string(SpatialPosEmbInit init);
AttentionLevel parse_attention_level(const std::string& name);         // "slice" | "scan" | "study"
Pooling parse_pooling(const std::string& name);                        // "cls" | "dinotxt" | "dual"
SpatialPosEmbInit parse_spatial_posemb_init(const std::string& name);  // "sincos3d" | "sincos1d+2d"

// The level of every block from the official index lists; each block must be in exactly one list.
std::vector<AttentionLevel> attention_levels_from_indexes(int64_t depth,
                                                          const std::vector<int64_t>& slice_indexes,
                                                          const std::vector<int64_t>& scan_indexes,
                                                          const std::vector<int64_t>& study_indexes);

// HLIP's published layout "h2": study attention in every third block (2, 5, 8, ...), scan attention
// elsewhere.
std::vector<AttentionLevel> scan_study_levels(int64_t depth);

struct VisionOptions {
  int64_t width = 768;  // C
  int64_t depth = 12;
  int64_t num_heads = 12;
  double mlp_ratio = 4.0;
  std::array<int64_t, 3> patch_size{8, 16, 16};   // (pd, ph, pw) voxels
  std::array<int64_t, 3> img_size{48, 224, 224};  // (D, H, W) of one scan at training time
  double norm_eps = 1e-6;
  std::vector<AttentionLevel> attention_levels = scan_study_levels(12);  // one per block
  int64_t reg_tokens = 0;                                                // register tokens after CLS
  Pooling pooling = Pooling::kCls;
  int64_t max_num_scans = 0;   // rows of the sequential (per-scan) embedding; 0 or 1 = none
  double patch_dropout = 0.0;  // fraction of patch tokens dropped per block-0 window in training
  double drop_path = 0.2;      // stochastic-depth rate of the last block (linear from 0), training only
  bool rope = false;           // axial RoPE on q and k of patch tokens (spec 3.11, the rejected ablation)
  bool grad_checkpointing = false;  // recompute each block in backward instead of keeping its activations
  AttentionKernel attention_kernel = AttentionKernel::kFused;
  SpatialPosEmbInit spatial_posemb_init = SpatialPosEmbInit::kSinCos1d2d;
  int64_t embed_dim = 512;  // E, width of the joint image-text space

  int64_t num_prefix_tokens() const { return 1 + reg_tokens; }
  int64_t num_features() const { return pooling == Pooling::kCls ? width : 2 * width; }
  std::array<int64_t, 3> grid_size() const;  // (d, h, w) = img_size / patch_size
  // Throws hlip::Error naming the first inconsistent field and its value.
  void validate() const;
};

// The knobs of a published HLIP model (spec section 1), e.g. "vit_base_multiscan_h2_token1176",
// "vit_base_scan_study_dualdinotxt1568", "vit_large_scan_study_dualdinotxt1568". Throws for unknown names.
VisionOptions vision_options_for(const std::string& model_name);
std::vector<std::string> published_vision_models();

// Intermediate tensors of one forward pass, named as in the reference cases (spec section 9).
struct VisionTrace {
  at::Tensor patch_tokens;         // [B, N, d, h, w, C], patch-embedding output
  at::Tensor pos_embed;            // [1, N or 1, d, h, w, C], sequential + spatial as added
  std::vector<at::Tensor> blocks;  // output of block i in its own layout [windows, P + tokens, C]
  at::Tensor features;             // [B, P + N*L, C] after the final merge and norm
  at::Tensor pooled;               // [B, P, C or 2C]
};

// Tokens entering block 0: [windows of block 0, P + patch tokens per window, C], prefix tokens in front,
// after the positional embedding and (in training) patch dropout.
struct EmbeddedStudy {
  at::Tensor tokens;
  at::Tensor rope_positions;  // [windows, patch tokens, 3] (depth, row, column in the scan) when rope is on
  int64_t num_scans = 0;
  std::array<int64_t, 3> grid{0, 0, 0};  // (d, h, w) of this study's scans
};

// The trace under the names of the reference cases and of `hlip forward` (spec section 9):
// {prefix}patch_tokens, {prefix}pos_embed, {prefix}blocks.{i}.out, {prefix}features, {prefix}pooled;
// undefined tensors are left out.
std::map<std::string, at::Tensor> named_tensors(const VisionTrace& trace,
                                                const std::string& prefix = "vision.");

// `visual.trunk`: timm VisionTransformer as subclassed by HLIP (HLIPVisualEncoder).
class HierarchicalVitImpl : public torch::nn::Module {
 public:
  explicit HierarchicalVitImpl(VisionOptions options);

  // image [B, N, 1, D, H, W] -> pooled features [B, P, C or 2C] (kCls: [B, 1, C]).
  at::Tensor forward(const at::Tensor& image, VisionTrace* trace = nullptr);
  // image -> tokens [B, P + N*L, C] after the final norm.
  at::Tensor forward_features(const at::Tensor& image, VisionTrace* trace = nullptr);
  // image -> block-0 tokens (patch embedding, positional embedding, prefix tokens, patch dropout).
  EmbeddedStudy embed(const at::Tensor& image, VisionTrace* trace = nullptr);
  at::Tensor pool(const at::Tensor& features) const;

  // Positional embedding added to the patch tokens of a study with `num_scans` scans on grid (d, h, w):
  // [1, num_scans or 1, d, h, w, C]. In training the sequential rows are a random subset (spec 3.3.4).
  at::Tensor position_embedding(int64_t num_scans, int64_t d, int64_t h, int64_t w);

  // Fills the weights as timm does for a model trained from scratch; the frozen embeddings get their sin-cos.
  void reset_parameters();

  const VisionOptions& options() const { return options_; }
  // Switches per-block gradient checkpointing (VisionOptions::grad_checkpointing) on a built model.
  void set_grad_checkpointing(bool enable) { options_.grad_checkpointing = enable; }

  PatchEmbed3d patch_embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  at::Tensor cls_token;          // [1, 1, C]
  at::Tensor reg_token;          // [1, R, C], undefined when R = 0
  at::Tensor spatial_posemb;     // [1, d, h, w, C], frozen
  at::Tensor sequential_posemb;  // [1, M, C], frozen, undefined when M <= 1

 private:
  at::Tensor run_block(int64_t index, const at::Tensor& x, const at::Tensor& rope_positions);

  VisionOptions options_;
  std::vector<Block> block_list_;
};
TORCH_MODULE(HierarchicalVit);

// `visual.head`: open_clip TimmModel's linear projection, no bias.
class VisionHeadImpl : public torch::nn::Module {
 public:
  VisionHeadImpl(int64_t num_features, int64_t embed_dim);
  at::Tensor forward(const at::Tensor& pooled) { return proj(pooled); }
  torch::nn::Linear proj{nullptr};
};
TORCH_MODULE(VisionHead);

// `visual`: image [B, N, 1, D, H, W] -> image features [B, P, E] (not normalised).
class VisionTowerImpl : public torch::nn::Module {
 public:
  explicit VisionTowerImpl(VisionOptions options);
  at::Tensor forward(const at::Tensor& image, VisionTrace* trace = nullptr);
  HierarchicalVit trunk{nullptr};
  VisionHead head{nullptr};
};
TORCH_MODULE(VisionTower);

}  // namespace hlip::model
