#pragma once
// Ablation sweep specifications (`hlip ablate SPEC`, docs/ablation.md): a TOML file with a base run, profiles
// and named ablations, each an ordered chain of arms that change some settings. `plan_sweep` resolves every
// arm of a profile to its full configuration, names it by a hash of that configuration (identical arms of
// different ablations become one) and orders the arms so that an arm starting from another arm's model
// comes after it.
//
//   auto spec = hlip::ablate::read_sweep_spec("configs/ablations/hlip-seed.toml");
//   auto plan = hlip::ablate::plan_sweep(spec, "quick");
//   for (const auto& arm : plan.arms) fmt::print("{} {}\n", arm.id, arm.changes.dump());
//
// Settings are flat keys with a namespace (TOML's dotted keys and nested tables both write them):
//   train.<key>        a `hlip train` setting (the keys of its --config file)
//   model.<json path>  a leaf of the model config JSON, e.g. model.vision_cfg.hlip.patch_size
//   model_config       the model config the model.* keys change (a configs/models/ name or a JSON file)
//   data.train         dataset names of the profile, each "NAME" or "NAME@WEIGHT"
//   data.eval          the dataset the zero-shot evaluations use
//   eval.task          the zero-shot task (configs/tasks/ name or a JSON file)
//   init.finetune      "ABLATION.LABEL": start from that arm's trained model (same seed)
//   init.inflate_2d    "ABLATION.LABEL": initialise the vision trunk from that arm's model as a 2D ViT,
//                      inflated (`hlip train --init-2d`; train.init_2d_inflation = average | central)

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlip::ablate {

// A flat JSON object of settings: key → value. `where` remembers "file:line" of each key for errors.
struct Settings {
  nlohmann::json values = nlohmann::json::object();
  std::map<std::string, std::string> where;
};

struct ArmSpec {
  std::string label;
  Settings changes;  // applied on top of the previous arm of the chain (the first: on the ablation's base)
  std::map<std::string, Settings>
      profile_changes;  // [ablation.arm.profile.NAME]: then these, in that profile
  std::string where;    // "file:line" of the arm
};

struct AblationSpec {
  std::string name;   // unique, no '.'
  std::string title;  // default: the name
  std::string note;
  Settings settings;                  // applied to every arm of this ablation before its own changes
  std::vector<std::string> profiles;  // only in these profiles (empty: all)
  std::vector<ArmSpec> arms;
  std::string where;
};

// Synthetic data a profile builds for itself under DIR/data (hlip synth, prepare, vocab): datasets "mri"
// and "ct".
struct SynthData {
  int64_t studies = 1000;  // `hlip synth --modality both`: half MRI, half CT
  uint64_t seed = 0;
  std::string size = "small";
  std::string mri_preset = "mri-brain";  // preset name or TOML file (relative paths: to the spec's folder)
  std::string ct_preset = "ct-head";
  int64_t vocab_size = 1000;
};

struct ProfileSpec {
  std::string name;
  std::string description;
  std::vector<uint64_t> seeds{0};
  int64_t steps = 0;  // step budget of every arm (train.max_steps unless an arm sets it); 0: by epochs
  int jobs = 1;       // runs at once when --jobs is not given
  std::optional<SynthData> synth;
  std::map<std::string, std::string> datasets;  // name → cache folder (without synth)
  std::string tokenizer;                        // without synth: tokenizer folder or vocab.txt
  Settings settings;                            // override the base
};

struct SweepSpec {
  std::string file;
  std::string title;
  std::string metric = "macro_auc";  // results.json mean.auc; curves: metrics.jsonl zeroshot/mean_auc
  bool higher_is_better = true;
  std::string split = "test";  // the held-out split of the final zero-shot evaluation
  Settings base;
  std::map<std::string, ProfileSpec> profiles;
  std::vector<AblationSpec> ablations;
};

// Parses a spec; errors name the file, the line and the key or value. `text` is read as if it were `path`.
SweepSpec read_sweep_spec(const std::string& path);
SweepSpec parse_sweep_spec(const std::string& text, const std::string& path);

struct Arm {
  std::string id;             // arm_id(config)
  nlohmann::json config;      // every setting, resolved (model.* written out in full, init.finetune = an id)
  nlohmann::json changes;     // the settings that differ from the profile's base
  nlohmann::json model;       // the derived model config JSON (written to arms/<id>/model.json)
  std::string finetune_from;  // id of the arm whose trained model this one starts from ("" none)
  std::string inflate_from;  // id of the arm whose model, as a 2D ViT, initialises this one's trunk ("" none)

  // The arm that must finish first (finetune_from or inflate_from; "" none).
  const std::string& source() const { return finetune_from.empty() ? inflate_from : finetune_from; }
};

struct PlannedAblation {
  int index = 0;  // 1-based, in spec order
  std::string name, title, note, task;
  std::vector<std::pair<std::string, std::string>> arms;  // (label, arm id), in chain order
};

struct SweepPlan {
  std::string spec_file;
  std::string title;
  ProfileSpec profile;
  std::string metric;
  bool higher_is_better = true;
  std::string split;
  std::string task;       // the base's eval.task
  std::vector<Arm> arms;  // distinct arms; each after the arm it fine-tunes from
  std::vector<PlannedAblation> ablations;

  const Arm& arm(const std::string& id) const;
};

// Resolves a profile's arms. Throws hlip::Error naming file, line, key and value for an unknown profile, an
// unknown or ill-typed key, an arm that changes nothing against the previous arm of its chain, an unknown
// arm reference and a cycle of init.finetune references.
SweepPlan plan_sweep(const SweepSpec& spec, const std::string& profile);

// A short stable name of a resolved configuration: 10 hex digits of FNV-1a 64 over its canonical JSON.
std::string arm_id(const nlohmann::json& config);

// The nested JSON `leaves` (objects flattened to dotted keys; arrays are leaves).
nlohmann::json flatten(const nlohmann::json& nested, const std::string& prefix = "");

}  // namespace hlip::ablate
