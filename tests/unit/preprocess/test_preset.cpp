// Presets: the published values, JSON round trips, and TOML custom presets with their errors.

#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <string>

#include "hlip/core/error.h"
#include "hlip/preprocess/preset.h"
#include "temp_dir.h"

namespace hlip::preprocess {
namespace {

using nlohmann::json;

using test::error_message;

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "\"" << part << "\" not in: " << text;
}

std::string write_toml(const test::TempDir& dir, const std::string& text) {
  const std::string path = dir.file("preset.toml");
  std::ofstream(path) << text;
  return path;
}

TEST(Preset, PublishedPresets) {
  const Preset mri = preset_by_name("mri-brain");
  EXPECT_EQ(mri.modality, "mri");
  EXPECT_EQ(mri.geometry, "eval");
  EXPECT_EQ(mri.output_size, (std::array<int64_t, 3>{48, 224, 224}));
  EXPECT_EQ(mri.resize_size, 256);
  EXPECT_EQ(mri.percentile_low, 0.5);
  EXPECT_EQ(mri.percentile_high, 99.5);
  EXPECT_FALSE(mri.target_spacing_mm.has_value());
  EXPECT_TRUE(mri.windows.empty());

  const Preset head = preset_by_name("ct-head");
  EXPECT_EQ(head.modality, "ct");
  EXPECT_EQ(head.output_size, (std::array<int64_t, 3>{48, 224, 224}));
  ASSERT_EQ(head.windows.size(), 3u);
  EXPECT_EQ(head.windows[0], (CtWindow{"brain", 0, 80}));
  EXPECT_EQ(head.windows[1], (CtWindow{"subdural", -20, 180}));
  EXPECT_EQ(head.windows[2], (CtWindow{"bone", -800, 2000}));

  const Preset chest = preset_by_name("ct-chest");
  EXPECT_EQ(chest.geometry, "crop");
  EXPECT_EQ(chest.output_size, (std::array<int64_t, 3>{112, 336, 336}));
  EXPECT_EQ(chest.target_spacing_mm, (std::array<double, 3>{3, 1, 1}));
  ASSERT_EQ(chest.windows.size(), 1u);
  EXPECT_EQ(chest.windows[0], (CtWindow{"ct-rate", -1150, 350}));

  for (const std::string& name : preset_names())
    EXPECT_NO_THROW(validate(preset_by_name(name))) << name;
  const std::string message = error_message([] { preset_by_name("mri"); });
  expect_contains(message, "\"mri\"");
  expect_contains(message, "mri-brain, ct-head, ct-chest");

  EXPECT_EQ(preset_for_modality("mri"), mri);
  EXPECT_EQ(preset_for_modality("ct"), head);
  EXPECT_THROW(preset_for_modality("pet"), Error);
}

TEST(Preset, JsonRoundTripsEveryField) {
  Preset custom = preset_by_name("ct-chest");
  custom.name = "wide";
  custom.windows.push_back(CtWindow::from_level_width("lung", -600, 1500));
  custom.target_spacing_mm = std::array<double, 3>{1.25, 0.7, 0.7};
  for (const Preset& p :
       {preset_by_name("mri-brain"), preset_by_name("ct-head"), preset_by_name("ct-chest"), custom}) {
    const json j = to_json(p);
    EXPECT_EQ(preset_from_json(json::parse(j.dump())), p) << j.dump();
    for (const char* key : {"name", "modality", "target_spacing_mm", "geometry", "output_size", "resize_size",
                            "percentile_low", "percentile_high", "windows", "pipeline"}) {
      EXPECT_TRUE(j.contains(key)) << key;
    }
  }
  EXPECT_TRUE(to_json(preset_by_name("mri-brain"))["target_spacing_mm"].is_null());
}

TEST(Preset, BadJsonIsAnError) {
  json j = to_json(preset_by_name("mri-brain"));
  json extra = j;
  extra["colour"] = "red";
  expect_contains(error_message([&] { preset_from_json(extra); }), "unknown key \"colour\"");
  json wrong = j;
  wrong["output_size"] = "big";
  expect_contains(error_message([&] { preset_from_json(wrong); }), "key \"output_size\": \"big\"");
  json missing = j;
  missing.erase("geometry");
  expect_contains(error_message([&] { preset_from_json(missing); }), "\"geometry\" is missing");
  json version = j;
  version["pipeline"] = "hlip-preprocess-0";
  expect_contains(error_message([&] { preset_from_json(version); }), "hlip-preprocess-0");
  json invalid = j;
  invalid["geometry"] = "stretch";
  expect_contains(error_message([&] { preset_from_json(invalid); }), "geometry \"stretch\"");
}

TEST(Preset, ValidateNamesFieldAndValue) {
  Preset p = preset_by_name("mri-brain");
  p.resize_size = 200;
  expect_contains(error_message([&] { validate(p); }), "resize_size 200");
  p = preset_by_name("ct-head");
  p.windows.push_back(p.windows[0]);
  expect_contains(error_message([&] { validate(p); }), "window \"brain\" appears twice");
  p = preset_by_name("ct-head");
  p.windows[1].name = "Sub dural";
  expect_contains(error_message([&] { validate(p); }), "\"Sub dural\"");
  p = preset_by_name("ct-head");
  p.windows.clear();
  expect_contains(error_message([&] { validate(p); }), "at least one window");
  p = preset_by_name("mri-brain");
  p.windows.push_back(named_window("brain"));
  expect_contains(error_message([&] { validate(p); }), "MRI");
  p = preset_by_name("mri-brain");
  p.percentile_high = 100.5;
  expect_contains(error_message([&] { validate(p); }), "100.5");
  p = preset_by_name("ct-chest");
  p.target_spacing_mm = std::array<double, 3>{3, 0, 1};
  expect_contains(error_message([&] { validate(p); }), "target_spacing_mm H is 0");
  p = preset_by_name("ct-chest");
  p.output_size[2] = 0;
  expect_contains(error_message([&] { validate(p); }), "output_size W is 0");
}

TEST(Preset, TomlCustomPreset) {
  test::TempDir dir;
  const std::string path = write_toml(dir, R"(
base = "ct-head"
name = "head-stroke"
output_size = [32, 192, 192]
resize_size = 224
target_spacing_mm = [5, 0.5, 0.5]

[[windows]]
name = "brain"

[[windows]]
name = "stroke"
level = 32
width = 8

[[windows]]
name = "wide"
min_hu = -100
max_hu = 300.5
)");
  const Preset p = preset_from_toml(path);
  EXPECT_EQ(p.name, "head-stroke");
  EXPECT_EQ(p.modality, "ct");
  EXPECT_EQ(p.geometry, "eval");  // from the base
  EXPECT_EQ(p.output_size, (std::array<int64_t, 3>{32, 192, 192}));
  EXPECT_EQ(p.resize_size, 224);
  EXPECT_EQ(p.target_spacing_mm, (std::array<double, 3>{5, 0.5, 0.5}));
  ASSERT_EQ(p.windows.size(), 3u);
  EXPECT_EQ(p.windows[0], (CtWindow{"brain", 0, 80}));
  EXPECT_EQ(p.windows[1], (CtWindow{"stroke", 28, 36}));
  EXPECT_EQ(p.windows[2], (CtWindow{"wide", -100, 300.5}));

  const Preset mri =
      preset_from_toml(write_toml(dir, "modality = \"mri\"\npercentile_low = 1\ngeometry = \"crop\"\n"));
  EXPECT_EQ(mri.name, "custom");
  EXPECT_EQ(mri.percentile_low, 1.0);
  EXPECT_EQ(mri.percentile_high, 99.5);
  EXPECT_EQ(mri.geometry, "crop");
  EXPECT_EQ(mri.output_size, (std::array<int64_t, 3>{48, 224, 224}));
}

TEST(Preset, TomlErrorsNameFileLineKeyAndValue) {
  test::TempDir dir;
  const auto error_for = [&](const std::string& text) {
    const std::string path = write_toml(dir, text);
    const std::string message = error_message([&] { preset_from_toml(path); });
    expect_contains(message, path);
    return message;
  };
  std::string m = error_for("modality = \"mri\"\ncolour = \"red\"\n");
  expect_contains(m, ":2: key \"colour\": unknown key");
  m = error_for("modality = \"mri\"\ngeometry = \"cropp\"\n");
  expect_contains(m, ":2: key \"geometry\": \"cropp\" is not one of crop, resize, eval");
  m = error_for("modality = \"xray\"\n");
  expect_contains(m, "\"xray\" is not one of mri, ct");
  m = error_for("modality = \"mri\"\noutput_size = [48, 224]\n");
  expect_contains(m, "key \"output_size\": [ 48, 224 ] is not a list of 3 numbers");
  m = error_for("modality = \"mri\"\noutput_size = [48, 224.5, 224]\n");
  expect_contains(m, "key \"output_size\": 224.5 is not an integer");
  m = error_for("modality = \"mri\"\npercentile_low = \"low\"\n");
  expect_contains(m, "key \"percentile_low\": \"low\" is not a number");
  m = error_for("base = \"ct-head\"\n[[windows]]\nname = \"stroke\"\nlevel = 32\n");
  expect_contains(m, "key \"windows[0]\": level and width go together");
  m = error_for("base = \"ct-head\"\n[[windows]]\nname = \"lungs\"\n");
  expect_contains(m, "unknown CT window \"lungs\"");
  m = error_for("base = \"ct-head\"\n[[windows]]\nname = \"x\"\nlevel = 1\nwidth = 2\nmin_hu = 3\n");
  expect_contains(m, "not both");
  m = error_for("base = \"ct-head\"\n[[windows]]\nname = \"x\"\ncentre = 1\n");
  expect_contains(m, "key \"windows[0].centre\": unknown key");
  m = error_for("base = \"ct-neck\"\n");
  expect_contains(m, ":1: key \"base\": unknown preset \"ct-neck\"");
  m = error_for("base = \"ct-head\"\nmodality = \"mri\"\n");
  expect_contains(m, "differs from base preset \"ct-head\"");
  m = error_for("geometry = \"crop\"\n");
  expect_contains(m, "\"modality\" (or \"base\") is required");
  m = error_for("modality = \"mri\"\nresize_size = 100\n");
  expect_contains(m, "resize_size 100");
  m = error_for("modality = \"mri\"\ngeometry = [\n");
  expect_contains(m, ":2:");  // a syntax error: file:line:column
  expect_contains(error_message([&] { preset_from_toml(dir.file("missing.toml")); }),
                  "missing.toml: no such preset file");
}

}  // namespace
}  // namespace hlip::preprocess
