#pragma once
// HLIP's image-text model: open_clip's `CustomTextCLIP` with the HLIP vision tower (`visual`), the BERT text
// tower (`text`), the parameter `logit_scale` and, when the config sets `init_logit_bias`, `logit_bias`
// (spec sections 5 and 7). named_parameters() are the open_clip state-dict keys, so a released
// `model.safetensors` loads by name. Configs follow open_clip's model-config JSON (spec section 9); the ones
// under configs/models/ are compiled into the library.
//
//   hlip::model::HlipClip clip = hlip::model::load_model_dir("clip-vit_base-scan_study-dualdinotxt1568");
//   clip->eval();
//   at::Tensor img = clip->encode_image(image);      // [B, N, 1, D, H, W] -> [B, P, E], unit length
//   at::Tensor txt = clip->encode_text(input_ids);   // [T, L] int64 -> [T, E], unit length
//   at::Tensor cos = at::einsum("bpe,te->bpt", {img, txt});
//
//   hlip::model::ClipConfig config = hlip::model::clip_config_by_name("hlip-tiny");
//   hlip::model::HlipClip fresh(config);             // initialised as for training from scratch
//   hlip::model::save_model_dir(fresh, config, "runs/demo/final");

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>
#include <nlohmann/json.hpp>

#include "hlip/model/state_dict.h"
#include "hlip/model/text.h"
#include "hlip/model/vision.h"

namespace hlip::model {

// ln(1 / 0.07): open_clip's initial logit_scale (spec section 5).
inline constexpr double kInitLogitScale = 2.659260036932778;
// ln(100): HLIP clamps logit_scale (and the dual report temperature logit_bias) to [0, this].
inline constexpr double kMaxLogitScale = 4.605170185988092;

// open_clip `text_cfg` of an HF text tower. HLIP pools the [CLS] row of the last hidden state
// (cls_last_hidden_state_pooler); open_clip's mean_pooler is also built, for towers trained from scratch (a
// random BERT's [CLS] row barely depends on the text). Other pooler or projection types are refused.
struct ClipTextConfig {
  std::string hf_model_name = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext";
  std::string hf_tokenizer_name = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext";
  std::string hf_pooler_type = "cls_last_hidden_state_pooler";
  std::string hf_proj_type = "linear";
  int64_t context_length = 256;  // tokens per text, [CLS] and [SEP] included
  BertOptions bert;              // `text_cfg.hf_config`; BiomedBERT-base when the config has none
};

// open_clip's model config (`model_cfg`): the file under configs/models/, or the "model_cfg" object of a
// released open_clip_config.json.
struct ClipConfig {
  int64_t embed_dim = 512;      // E; copied into vision.embed_dim
  std::string timm_model_name;  // vision_cfg.timm_model_name (names the published knobs; informative when
                                // the `hlip` block is present)
  VisionOptions vision;         // vision_cfg: timm keys + the `hlip` block of architecture knobs
  ClipTextConfig text;
  double init_logit_scale = kInitLogitScale;
  // Present in dual models (the report loss's log-temperature, spec 5) and SigLIP models (the logit bias).
  std::optional<double> init_logit_bias;

  // `model_cfg` -> config. Without a `vision_cfg.hlip` block, a published timm_model_name gives the knobs.
  // Throws hlip::Error naming the key for missing, ill-typed or unsupported values.
  static ClipConfig from_json(const nlohmann::json& model_cfg);
  // Every field written out, in open_clip's shape; from_json(to_json()) gives the same config.
  nlohmann::json to_json() const;

  TextTowerOptions text_options() const;
  // Throws hlip::Error naming the first inconsistent field.
  void validate() const;
};

// Reads a model config from JSON: an open_clip_config.json (uses its "model_cfg") or a bare model config.
// Errors name the file.
ClipConfig read_clip_config(const std::string& json_path);
// A config of configs/models/ by file name without ".json" ("hlip-tiny",
// "clip_vit_base_scan_study_dualdinotxt1568", ...), embedded at build time. A vision model name ("vit_base_
// scan_study_dualdinotxt1568") finds its "clip_" config. Throws hlip::Error listing the known names.
ClipConfig clip_config_by_name(const std::string& name);
std::vector<std::string> known_model_configs();  // sorted
// A path to an existing JSON file is read; anything else is looked up by name.
ClipConfig resolve_clip_config(const std::string& name_or_path);

// Output of HlipClip::forward, as open_clip's `output_dict=True`.
struct ClipOutput {
  at::Tensor image_features;  // [B, P, E], unit length; row 0 sentence / zero-shot, row 1 report (dual)
  at::Tensor text_features;   // [T, E], unit length
  at::Tensor logit_scale;     // exp(logit_scale), 0-dim
  at::Tensor logit_bias;  // the raw parameter (dual: exp() of it scales the report loss); undefined if absent
};

class HlipClipImpl : public torch::nn::Module {
 public:
  // Built and initialised as for training from scratch (timm init for the vision tower, Hugging Face BERT
  // init for the text tower, logit_scale = init_logit_scale).
  explicit HlipClipImpl(ClipConfig config);

  // image [B, N, 1, D, H, W] -> [B, P, E]: P = 1 for CLS and dino.txt pooling, P = 2 for dual pooling (row 0
  // the sentence embedding, row 1 the report embedding). Always 3-D, also for v1 models (open_clip's v1 code
  // returned [B, E]: take row 0). Normalised to unit length over E unless `normalize` is false. `trace`
  // receives the vision tower's intermediate tensors.
  at::Tensor encode_image(const at::Tensor& image, bool normalize = true, VisionTrace* trace = nullptr);
  // input_ids [T, L] int64 -> [T, E]. attention_mask [T, L] (1 = token, 0 = padding) may be undefined, in
  // which case it is (input_ids != pad_token_id), as open_clip derives it.
  at::Tensor encode_text(const at::Tensor& input_ids, const at::Tensor& attention_mask = {},
                         bool normalize = true, TextOutput* trace = nullptr);
  ClipOutput forward(const at::Tensor& image, const at::Tensor& input_ids,
                     const at::Tensor& attention_mask = {});

  // open_clip `lock_text`: freezes the BERT tower except its last `unlocked_layers` layers; text.proj stays
  // trainable.
  void lock_text(int64_t unlocked_layers = 0, bool freeze_layer_norm = true);
  // Gradient checkpointing of every vision block. The BERT tower is not checkpointed: its activations are a
  // small part of HLIP's memory (T x context tokens against B x N x L image tokens).
  void set_grad_checkpointing(bool enable = true);
  // HLIP after every optimizer step: logit_scale into [0, ln 100]; logit_bias too when it is the dual report
  // temperature (P = 2). A SigLIP bias (P = 1) is left alone.
  void clamp_logit_scale();
  void reset_parameters();

  const ClipConfig& config() const { return config_; }

  VisionTower visual{nullptr};
  TextTower text{nullptr};
  at::Tensor logit_scale;  // 0-dim
  at::Tensor logit_bias;   // 0-dim, undefined unless config().init_logit_bias

 private:
  ClipConfig config_;
};
TORCH_MODULE(HlipClip);

// x / max(||x||_2, 1e-12) over the last dimension (torch.nn.functional.normalize).
at::Tensor l2_normalize(const at::Tensor& x);

// What `hlip forward` writes: every output named in spec section 9 that the model produces for `inputs`
// ("image" [B, N, 1, D, H, W], optional "image_alt", "input_ids" [T, L], optional "attention_mask"), computed
// without gradients in the model's current mode (call eval() first for the reference semantics):
//   vision.patch_tokens, vision.pos_embed [1, N, d, h, w, C], vision.blocks.{i}.out, vision.features,
//   vision.pooled, image_features [B, P, E], image_embeds (unit length); text.last_hidden_state, text.pooled,
//   text_features, text_embeds; logits_per_image [B, P, T] = exp(logit_scale) * cosine; logits_report [B, T]
//   = exp(logit_bias) * cosine of image row 1 (two image rows and a logit_bias); the same with "alt." for
//   image_alt. Image inputs of any floating dtype are converted to the model's; ids to int64.
std::map<std::string, at::Tensor> forward_outputs(HlipClipImpl& model,
                                                  const std::map<std::string, at::Tensor>& inputs);

struct ModelDirOptions {
  // A config name or JSON path used instead of the folder's open_clip_config.json (required when it has
  // none).
  std::string config;
  // Missing and unexpected keys are errors (mis-shaped keys always are). `text.transformer.embeddings.
  // position_ids` (older transformers) is always ignored.
  bool strict = true;
  // The spec leaves open which E and whether `logit_bias` each published checkpoint has (section 1): take E
  // from visual.head.proj.weight and logit_bias from its presence in the weights, and log the change.
  bool adapt_to_weights = true;
  // Called on the config before the model is built, e.g. to pick the attention kernel or set patch dropout
  // for fine-tuning.
  std::function<void(ClipConfig&)> adjust_config;
};

// Loads a folder in the layout of released checkpoints: open_clip_config.json + model.safetensors, or a
// sharded model.safetensors.index.json ({"weight_map": {key: file}}) + its shard files. A `module.` prefix on
// every key (DDP training checkpoints) is removed. Returns the model in training mode; `report` receives the
// load report. Errors name the folder and list missing / unexpected / mis-shaped keys.
HlipClip load_model_dir(const std::string& dir, const ModelDirOptions& options = {},
                        LoadReport* report = nullptr);

// The tensors of a model folder (model.safetensors, or a sharded index and its shards) or of one safetensors
// file (weights, or a training checkpoint with its optimizer state), by name, as stored. Errors name the
// path.
std::map<std::string, at::Tensor> read_model_weights(const std::string& path);

struct SaveModelDirOptions {
  // A tokenizer folder (vocab.txt and, if present, tokenizer_config.json and special_tokens_map.json) or a
  // bare vocab.txt, copied into `dir/tokenizer/`.
  std::string tokenizer;
  std::map<std::string, std::string> metadata;  // extra __metadata__ of model.safetensors
  // The preprocessing preset of the training scans (preprocess::to_json), written as
  // open_clip_config.json "preprocess_cfg"."hlip_preset"; `hlip zeroshot --study` prepares raw scans with it.
  std::optional<nlohmann::json> preprocess_preset;
};

// Writes `dir/model.safetensors` (the open_clip keys) and `dir/open_clip_config.json` ({"model_cfg": config,
// "preprocess_cfg"}), each atomically; the config is written last, so a folder with a config is complete.
void save_model_dir(HlipClip& model, const ClipConfig& config, const std::string& dir,
                    const SaveModelDirOptions& options = {});

// The preprocessing a model folder records (open_clip_config.json "preprocess_cfg"."hlip_preset"), as
// written; nothing when the folder has no config or the config no preset. A config that is not JSON is an
// error.
std::optional<nlohmann::json> recorded_preprocess_preset(const std::string& dir);

// `dir/tokenizer` when it holds a vocab.txt (as save_model_dir writes it), else an empty string.
std::string model_dir_tokenizer(const std::string& dir);

}  // namespace hlip::model
