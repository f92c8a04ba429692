#include "hlip/data/manifest.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <set>

#include "hlip/core/error.h"

namespace hlip::data {
namespace {

namespace fs = std::filesystem;

struct Where {
  const std::string& file;
  int line;
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(fmt::format("{}:{}: {}", file, line, message));
  }
};

const nlohmann::json& required(const nlohmann::json& object, const char* key, const Where& where) {
  const auto it = object.find(key);
  if (it == object.end()) where.fail(fmt::format("missing field \"{}\"", key));
  return *it;
}

std::string string_field(const nlohmann::json& value, const std::string& field, const Where& where) {
  if (!value.is_string()) where.fail(fmt::format("\"{}\" must be a string, got {}", field, value.dump()));
  return value.get<std::string>();
}

// A report is a list of sentences or one text (kept as a single sentence).
std::vector<std::string> sentences(const nlohmann::json& value, const std::string& field,
                                   const Where& where) {
  if (value.is_string()) return {value.get<std::string>()};
  if (!value.is_array()) where.fail(fmt::format("\"{}\" must be a string or a list of strings", field));
  std::vector<std::string> out;
  for (size_t i = 0; i < value.size(); ++i)
    out.push_back(string_field(value[i], fmt::format("{}[{}]", field, i), where));
  return out;
}

std::string resolve_inside(const std::string& root, const std::string& relative, const std::string& field,
                           const Where& where) {
  if (relative.empty()) where.fail(fmt::format("{} is empty", field));
  const fs::path path(relative);
  if (path.is_absolute())
    where.fail(fmt::format("{} \"{}\" is absolute; paths are relative to the manifest", field, relative));
  const fs::path joined = (fs::path(root) / path).lexically_normal();
  const fs::path inside = joined.lexically_relative(fs::path(root).lexically_normal());
  if (inside.empty() || *inside.begin() == "..")
    where.fail(fmt::format("{} \"{}\" leaves the data root", field, relative));
  return joined.string();
}

}  // namespace

ManifestStudy parse_manifest_line(const std::string& line, const std::string& root, const std::string& file,
                                  int line_number) {
  const Where where{file, line_number};
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    where.fail(fmt::format("not valid JSON: {}", e.what()));
  }
  if (!json.is_object()) where.fail("a manifest line must be a JSON object");

  ManifestStudy study;
  study.line = line_number;
  study.id = string_field(required(json, "study", where), "study", where);
  if (study.id.empty()) where.fail("\"study\" is empty");
  study.modality = string_field(required(json, "modality", where), "modality", where);
  if (study.modality != "mri" && study.modality != "ct") {
    where.fail(fmt::format("\"modality\" is \"{}\", expected \"mri\" or \"ct\"", study.modality));
  }
  if (json.contains("split")) study.split = string_field(json["split"], "split", where);

  const auto& scans = required(json, "scans", where);
  if (!scans.is_array() || scans.empty()) where.fail("\"scans\" must be a non-empty list");
  for (size_t i = 0; i < scans.size(); ++i) {
    const std::string field = fmt::format("\"scans\"[{}]", i);
    const auto& scan = scans[i];
    ManifestScan entry;
    if (scan.is_string()) {
      entry.path = resolve_inside(root, scan.get<std::string>(), field, where);
    } else if (scan.is_object()) {
      entry.path = resolve_inside(root, string_field(required(scan, "path", where), field + ".path", where),
                                  field + ".path", where);
      if (scan.contains("name")) entry.name = string_field(scan["name"], field + ".name", where);
    } else {
      where.fail(fmt::format("{} must be a path or an object with \"path\"", field));
    }
    study.scans.push_back(std::move(entry));
  }

  if (json.contains("report")) study.report = sentences(json["report"], "report", where);
  if (json.contains("reports")) {
    const auto& reports = json["reports"];
    if (!reports.is_object()) where.fail("\"reports\" must be an object of report sources");
    for (const auto& [source, value] : reports.items()) {
      study.reports[source] = sentences(value, fmt::format("reports.{}", source), where);
    }
  }
  if (study.report.empty() && !study.reports.empty()) study.report = study.reports.begin()->second;

  if (json.contains("labels")) {
    const auto& labels = json["labels"];
    if (!labels.is_object()) where.fail("\"labels\" must be an object of class → value");
    for (const auto& [name, value] : labels.items()) {
      if (value.is_boolean()) {
        study.labels[name] = value.get<bool>() ? 1 : 0;
      } else if (value.is_number_integer()) {
        study.labels[name] = value.get<int>();
      } else {
        where.fail(fmt::format("\"labels\".{} is {}, expected an integer or a boolean", name, value.dump()));
      }
    }
  }
  if (json.contains("qa")) {
    const auto& qa = json["qa"];
    if (!qa.is_array()) where.fail("\"qa\" must be an array of {\"question\", \"answer\"} objects");
    for (size_t i = 0; i < qa.size(); ++i) {
      const auto& item = qa[i];
      const auto text = [&](const char* key, bool required) -> std::string {
        if (!item.is_object() || (!item.contains(key) && required))
          where.fail(fmt::format("\"qa\"[{}] has no \"{}\"", i, key));
        if (!item.contains(key)) return "";
        if (!item[key].is_string() || (required && item[key].get<std::string>().empty()))
          where.fail(
              fmt::format("\"qa\"[{}].{} is {}, expected a non-empty string", i, key, item[key].dump()));
        return item[key].get<std::string>();
      };
      study.qa.push_back({text("type", false), text("question", true), text("answer", true)});
    }
  }
  return study;
}

std::vector<ManifestStudy> read_manifest(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open manifest", path));
  const std::string root = fs::absolute(fs::path(path)).parent_path().string();
  std::vector<ManifestStudy> studies;
  std::set<std::string> ids;
  int number = 0;
  for (std::string line; std::getline(in, line);) {
    ++number;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    auto study = parse_manifest_line(line, root, path, number);
    if (!ids.insert(study.id).second)
      throw Error(fmt::format("{}:{}: duplicate study \"{}\"", path, number, study.id));
    studies.push_back(std::move(study));
  }
  if (studies.empty()) throw Error(fmt::format("{}: manifest has no studies", path));
  return studies;
}

const std::vector<std::string>& report_sentences(const ManifestStudy& study, const std::string& source) {
  if (source.empty() || source == "report") return study.report;
  const auto it = study.reports.find(source);
  if (it == study.reports.end()) {
    std::string known;
    for (const auto& [name, sentences] : study.reports)
      known += (known.empty() ? "" : ", ") + name;
    throw Error(fmt::format("study \"{}\" (line {}): no report source \"{}\" (has: {})", study.id, study.line,
                            source, known.empty() ? "none" : known));
  }
  return it->second;
}

}  // namespace hlip::data
