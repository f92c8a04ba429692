#include "hlip/preprocess/preset.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <toml++/toml.h>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>

#include "hlip/core/error.h"

namespace hlip::preprocess {
namespace {

// Bumped whenever a convention of the chain changes, so caches can tell outputs of different code apart.
constexpr const char* kPipelineVersion = "hlip-preprocess-1";

const std::vector<std::string> kModalities = {"mri", "ct"};
const std::vector<std::string> kGeometries = {"crop", "resize", "eval"};

bool one_of(const std::string& value, const std::vector<std::string>& choices) {
  return std::find(choices.begin(), choices.end(), value) != choices.end();
}

bool valid_window_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) return false;
  }
  return true;
}

Preset mri_brain() {
  Preset p;
  p.name = "mri-brain";
  p.modality = "mri";
  p.geometry = "eval";
  p.output_size = {48, 224, 224};
  p.resize_size = 256;
  return p;
}

Preset ct_head() {
  Preset p;
  p.name = "ct-head";
  p.modality = "ct";
  p.geometry = "eval";
  p.output_size = {48, 224, 224};
  p.resize_size = 256;
  p.windows = {named_window("brain"), named_window("subdural"), named_window("bone")};
  return p;
}

Preset ct_chest() {
  Preset p;
  p.name = "ct-chest";
  p.modality = "ct";
  p.target_spacing_mm = std::array<double, 3>{3.0, 1.0, 1.0};
  p.geometry = "crop";
  p.output_size = {112, 336, 336};
  p.resize_size = 384;  // CT-RATE 2026 "resize" (384 → 336), used when geometry is switched to "eval"
  p.windows = {named_window("ct-rate")};
  return p;
}

}  // namespace

bool Preset::operator==(const Preset& other) const {
  return name == other.name && modality == other.modality && target_spacing_mm == other.target_spacing_mm &&
         geometry == other.geometry && output_size == other.output_size && resize_size == other.resize_size &&
         percentile_low == other.percentile_low && percentile_high == other.percentile_high &&
         windows == other.windows;
}

std::vector<std::string> preset_names() {
  return {"mri-brain", "ct-head", "ct-chest"};
}

Preset preset_by_name(const std::string& name) {
  if (name == "mri-brain") return mri_brain();
  if (name == "ct-head") return ct_head();
  if (name == "ct-chest") return ct_chest();
  throw Error(fmt::format("unknown preset \"{}\" (known: {})", name, fmt::join(preset_names(), ", ")));
}

Preset preset_for_modality(const std::string& modality) {
  if (modality == "mri") return mri_brain();
  if (modality == "ct") return ct_head();
  throw Error(fmt::format("no preset for modality \"{}\" (known: mri, ct)", modality));
}

void validate(const Preset& p) {
  const auto fail = [&p](const std::string& what) {
    throw Error(fmt::format("preset \"{}\": {}", p.name, what));
  };
  if (p.name.empty()) throw Error("preset: name is empty");
  if (!one_of(p.modality, kModalities))
    fail(fmt::format("modality \"{}\" is not one of mri, ct", p.modality));
  if (!one_of(p.geometry, kGeometries)) {
    fail(fmt::format("geometry \"{}\" is not one of crop, resize, eval", p.geometry));
  }
  for (int d = 0; d < 3; ++d) {
    if (p.output_size[d] < 1 || p.output_size[d] > 4096) {
      fail(fmt::format("output_size {} is {}, must be 1..4096", "DHW"[d], p.output_size[d]));
    }
  }
  if (p.geometry != "crop" &&
      (p.resize_size < std::max(p.output_size[1], p.output_size[2]) || p.resize_size > 4096)) {
    fail(fmt::format("resize_size {} must be at least the output's H and W ({}, {}) and at most 4096",
                     p.resize_size, p.output_size[1], p.output_size[2]));
  }
  if (p.target_spacing_mm) {
    for (int d = 0; d < 3; ++d) {
      const double s = (*p.target_spacing_mm)[d];
      if (!(s > 0) || !std::isfinite(s))
        fail(fmt::format("target_spacing_mm {} is {}, must be > 0", "DHW"[d], s));
    }
  }
  if (!(p.percentile_low >= 0 && p.percentile_low < p.percentile_high && p.percentile_high <= 100)) {
    fail(fmt::format("percentiles {}..{} must satisfy 0 <= low < high <= 100", p.percentile_low,
                     p.percentile_high));
  }
  if (p.modality == "mri" && !p.windows.empty()) fail("CT windows given for an MRI preset");
  if (p.modality == "ct" && p.windows.empty()) fail("a CT preset needs at least one window");
  std::set<std::string> seen;
  for (const CtWindow& w : p.windows) {
    if (!valid_window_name(w.name)) {
      fail(fmt::format("window name \"{}\" must be lower-case letters, digits, '-' or '_'", w.name));
    }
    if (!seen.insert(w.name).second) fail(fmt::format("window \"{}\" appears twice", w.name));
    if (!std::isfinite(w.min_hu) || !std::isfinite(w.max_hu) || !(w.min_hu < w.max_hu)) {
      fail(fmt::format("window \"{}\": min {} HU must be below max {} HU", w.name, w.min_hu, w.max_hu));
    }
  }
}

nlohmann::json to_json(const Preset& p) {
  nlohmann::json windows = nlohmann::json::array();
  for (const CtWindow& w : p.windows)
    windows.push_back({{"name", w.name}, {"min_hu", w.min_hu}, {"max_hu", w.max_hu}});
  return {
      {"pipeline", kPipelineVersion},
      {"name", p.name},
      {"modality", p.modality},
      {"target_spacing_mm",
       p.target_spacing_mm ? nlohmann::json(*p.target_spacing_mm) : nlohmann::json(nullptr)},
      {"geometry", p.geometry},
      {"output_size", p.output_size},
      {"resize_size", p.resize_size},
      {"percentile_low", p.percentile_low},
      {"percentile_high", p.percentile_high},
      {"windows", windows},
  };
}

namespace {

template <typename T>
T json_field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) throw Error(fmt::format("preset JSON: key \"{}\" is missing", key));
  try {
    return j.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw Error(fmt::format("preset JSON: key \"{}\": {} has the wrong type", key, j.at(key).dump()));
  }
}

void require_keys(const nlohmann::json& j, const std::set<std::string>& known, const std::string& where) {
  if (!j.is_object()) throw Error(fmt::format("preset JSON: {} is not an object: {}", where, j.dump()));
  for (const auto& [key, value] : j.items()) {
    if (!known.count(key)) {
      throw Error(fmt::format("preset JSON: unknown key \"{}\" in {} (known: {})", key, where,
                              fmt::join(known, ", ")));
    }
  }
}

}  // namespace

Preset preset_from_json(const nlohmann::json& j) {
  require_keys(j,
               {"pipeline", "name", "modality", "target_spacing_mm", "geometry", "output_size", "resize_size",
                "percentile_low", "percentile_high", "windows"},
               "the preset");
  const auto pipeline = json_field<std::string>(j, "pipeline");
  if (pipeline != kPipelineVersion) {
    throw Error(
        fmt::format("preset JSON: pipeline \"{}\" is not this build's \"{}\"", pipeline, kPipelineVersion));
  }
  Preset p;
  p.name = json_field<std::string>(j, "name");
  p.modality = json_field<std::string>(j, "modality");
  if (!j.contains("target_spacing_mm")) throw Error("preset JSON: key \"target_spacing_mm\" is missing");
  if (!j.at("target_spacing_mm").is_null())
    p.target_spacing_mm = json_field<std::array<double, 3>>(j, "target_spacing_mm");
  p.geometry = json_field<std::string>(j, "geometry");
  p.output_size = json_field<std::array<int64_t, 3>>(j, "output_size");
  p.resize_size = json_field<int64_t>(j, "resize_size");
  p.percentile_low = json_field<double>(j, "percentile_low");
  p.percentile_high = json_field<double>(j, "percentile_high");
  const auto windows = json_field<nlohmann::json>(j, "windows");
  if (!windows.is_array())
    throw Error(fmt::format("preset JSON: key \"windows\": {} is not an array", windows.dump()));
  for (const auto& w : windows) {
    require_keys(w, {"name", "min_hu", "max_hu"}, "a window");
    p.windows.push_back({json_field<std::string>(w, "name"), json_field<double>(w, "min_hu"),
                         json_field<double>(w, "max_hu")});
  }
  try {
    validate(p);
  } catch (const Error& e) {
    throw Error(fmt::format("preset JSON: {}", e.what()));
  }
  return p;
}

namespace {

// Reading one TOML file, with every error naming the file, the line and the key.
class TomlReader {
 public:
  explicit TomlReader(std::string path) : path_(std::move(path)) {}

  [[noreturn]] void fail(const toml::node& node, const std::string& key, const std::string& what) const {
    throw Error(fmt::format("{}:{}: key \"{}\": {}", path_, node.source().begin.line, key, what));
  }

  static std::string shown(const toml::node& node) {
    if (node.is_string()) return fmt::format("\"{}\"", node.as_string()->get());
    std::ostringstream out;
    node.visit([&out](const auto& v) { out << v; });
    return out.str();
  }

  std::string string(const toml::node& node, const std::string& key) const {
    if (!node.is_string()) fail(node, key, fmt::format("{} is not a string", shown(node)));
    return node.as_string()->get();
  }

  double number(const toml::node& node, const std::string& key) const {
    if (node.is_integer()) return static_cast<double>(node.as_integer()->get());
    if (node.is_floating_point()) return node.as_floating_point()->get();
    fail(node, key, fmt::format("{} is not a number", shown(node)));
  }

  int64_t integer(const toml::node& node, const std::string& key) const {
    if (!node.is_integer()) fail(node, key, fmt::format("{} is not an integer", shown(node)));
    return node.as_integer()->get();
  }

  template <typename T, typename Read>
  std::array<T, 3> triple(const toml::node& node, const std::string& key, Read read) const {
    const toml::array* array = node.as_array();
    if (!array || array->size() != 3)
      fail(node, key, fmt::format("{} is not a list of 3 numbers", shown(node)));
    std::array<T, 3> out{};
    for (size_t i = 0; i < 3; ++i)
      out[i] = (this->*read)((*array)[i], key);
    return out;
  }

  std::string choice(const toml::node& node, const std::string& key,
                     const std::vector<std::string>& choices) const {
    std::string value = string(node, key);
    if (!one_of(value, choices)) {
      fail(node, key, fmt::format("\"{}\" is not one of {}", value, fmt::join(choices, ", ")));
    }
    return value;
  }

  CtWindow window(const toml::node& node, size_t index) const {
    const std::string key = fmt::format("windows[{}]", index);
    const toml::table* table = node.as_table();
    if (!table) fail(node, key, fmt::format("{} is not a table", shown(node)));
    std::optional<std::string> name;
    std::optional<double> level, width, min_hu, max_hu;
    for (const auto& [k, value] : *table) {
      const std::string field = key + "." + std::string(k.str());
      if (k == "name") {
        name = string(value, field);
      } else if (k == "level") {
        level = number(value, field);
      } else if (k == "width") {
        width = number(value, field);
      } else if (k == "min_hu") {
        min_hu = number(value, field);
      } else if (k == "max_hu") {
        max_hu = number(value, field);
      } else {
        fail(value, field, "unknown key (known: name, level, width, min_hu, max_hu)");
      }
    }
    if (!name) fail(node, key, "a window needs a name");
    const bool by_level = level || width, by_range = min_hu || max_hu;
    if (by_level && by_range) fail(node, key, "give either level/width or min_hu/max_hu, not both");
    if (by_level) {
      if (!level || !width) fail(node, key, "level and width go together");
      return CtWindow::from_level_width(*name, *level, *width);
    }
    if (by_range) {
      if (!min_hu || !max_hu) fail(node, key, "min_hu and max_hu go together");
      return CtWindow{*name, *min_hu, *max_hu};
    }
    try {
      return named_window(*name);
    } catch (const Error& e) {
      fail(node, key, fmt::format("{}; give level/width or min_hu/max_hu for a new one", e.what()));
    }
  }

  Preset read() const {
    toml::table root;
    try {
      root = toml::parse_file(path_);
    } catch (const toml::parse_error& e) {
      if (!std::filesystem::exists(path_)) throw Error(fmt::format("{}: no such preset file", path_));
      throw Error(fmt::format("{}:{}:{}: {}", path_, e.source().begin.line, e.source().begin.column,
                              e.description()));
    }
    Preset preset;
    if (const toml::node* base = root.get("base")) {
      try {
        preset = preset_by_name(string(*base, "base"));
      } catch (const Error& e) {
        if (!base->is_string()) throw;
        fail(*base, "base", e.what());
      }
      if (const toml::node* modality = root.get("modality")) {
        const std::string value = choice(*modality, "modality", kModalities);
        if (value != preset.modality) {
          fail(*modality, "modality",
               fmt::format("\"{}\" differs from base preset \"{}\" ({})", value, preset.name,
                           preset.modality));
        }
      }
    } else {
      const toml::node* modality = root.get("modality");
      if (!modality) throw Error(fmt::format("{}: key \"modality\" (or \"base\") is required", path_));
      preset = preset_for_modality(choice(*modality, "modality", kModalities));
    }
    preset.name = "custom";
    for (const auto& [k, value] : root) {
      const std::string key(k.str());
      if (key == "base" || key == "modality") continue;
      if (key == "name") {
        preset.name = string(value, key);
      } else if (key == "geometry") {
        preset.geometry = choice(value, key, kGeometries);
      } else if (key == "output_size") {
        preset.output_size = triple<int64_t>(value, key, &TomlReader::integer);
      } else if (key == "resize_size") {
        preset.resize_size = integer(value, key);
      } else if (key == "target_spacing_mm") {
        preset.target_spacing_mm = triple<double>(value, key, &TomlReader::number);
      } else if (key == "percentile_low") {
        preset.percentile_low = number(value, key);
      } else if (key == "percentile_high") {
        preset.percentile_high = number(value, key);
      } else if (key == "windows") {
        const toml::array* array = value.as_array();
        if (!array) fail(value, key, fmt::format("{} is not a list of [[windows]] tables", shown(value)));
        preset.windows.clear();
        for (size_t i = 0; i < array->size(); ++i)
          preset.windows.push_back(window((*array)[i], i));
      } else {
        fail(value, key,
             "unknown key (known: base, name, modality, geometry, output_size, resize_size, "
             "target_spacing_mm, "
             "percentile_low, percentile_high, windows)");
      }
    }
    try {
      validate(preset);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", path_, e.what()));
    }
    return preset;
  }

 private:
  std::string path_;
};

}  // namespace

Preset preset_from_toml(const std::string& path) {
  return TomlReader(path).read();
}

}  // namespace hlip::preprocess
