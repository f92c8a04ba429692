#include "hlip/data/csv_manifest.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>

#include "hlip/core/error.h"
#include "hlip/core/files.h"
#include "hlip/text/report.h"

namespace hlip::data {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::vector<std::string> split_paths(const std::string& cell) {
  std::vector<std::string> out;
  std::stringstream stream(cell);
  std::string item;
  while (std::getline(stream, item, ';')) {
    const auto begin = item.find_first_not_of(" \t");
    if (begin == std::string::npos) continue;
    out.push_back(item.substr(begin, item.find_last_not_of(" \t") - begin + 1));
  }
  return out;
}

}  // namespace

std::vector<std::string> parse_csv_record(const std::string& text, size_t& pos) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  while (pos < text.size()) {
    const char c = text[pos++];
    if (quoted) {
      if (c == '"') {
        if (pos < text.size() && text[pos] == '"') {
          fields.back() += '"';
          ++pos;
        } else {
          quoted = false;
        }
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
      return fields;
    } else {
      fields.back() += c;
    }
  }
  if (quoted) throw Error("unterminated quoted field at the end of the file");
  return fields;
}

int64_t csv_to_manifest(const CsvManifestOptions& options) {
  std::ifstream in(options.csv, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open CSV file", options.csv));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  size_t pos = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;  // a UTF-8 byte-order mark
  const auto header = parse_csv_record(text, pos);
  std::map<std::string, size_t> column;
  for (size_t i = 0; i < header.size(); ++i)
    column.emplace(header[i], i);
  auto find = [&](const std::string& name, bool required) -> std::optional<size_t> {
    auto it = column.find(name);
    if (it != column.end()) return it->second;
    if (required) {
      throw Error(fmt::format("{}: no column \"{}\" (columns: {})", options.csv, name, json(header).dump()));
    }
    return std::nullopt;
  };
  const size_t study_col = *find(options.study_column, true);
  const size_t scan_col = *find(options.scan_column, true);
  const auto name_col = find(options.scan_name_column, false);
  const auto report_col = find(options.report_column, false);
  const auto modality_col = find(options.modality_column, false);
  const auto split_col = find(options.split_column, false);
  std::vector<std::pair<std::string, size_t>> label_cols;
  if (options.label_columns.empty()) {
    for (size_t i = 0; i < header.size(); ++i) {
      const bool known = i == study_col || i == scan_col || i == name_col || i == report_col ||
                         i == modality_col || i == split_col;
      if (!known) label_cols.emplace_back(header[i], i);
    }
  } else {
    for (const auto& name : options.label_columns)
      label_cols.emplace_back(name, *find(name, true));
  }

  const fs::path csv_dir = fs::absolute(options.csv).parent_path();
  const fs::path out_dir = fs::absolute(options.out).parent_path();
  std::vector<std::string> order;
  std::map<std::string, json> studies;
  for (int row = 2; pos < text.size(); ++row) {
    const auto fields = parse_csv_record(text, pos);
    if (fields.size() == 1 && fields[0].empty()) continue;  // a blank line
    const std::string where = fmt::format("{}:{}", options.csv, row);
    if (fields.size() != header.size()) {
      throw Error(fmt::format("{}: {} fields, the header has {}", where, fields.size(), header.size()));
    }
    const std::string& id = fields[study_col];
    if (id.empty()) throw Error(fmt::format("{}: column \"{}\" is empty", where, options.study_column));
    json study = {{"study", id},
                  {"modality", modality_col ? fields[*modality_col] : options.modality},
                  {"scans", json::array()}};
    if (split_col && !fields[*split_col].empty()) study["split"] = fields[*split_col];
    if (report_col && !fields[*report_col].empty()) {
      study["report"] = text::split_sentences(fields[*report_col]);
    }
    json labels = json::object();
    for (const auto& [name, index] : label_cols) {
      const std::string& cell = fields[index];
      if (cell.empty()) continue;
      try {
        size_t used = 0;
        const int value = std::stoi(cell, &used);
        if (used != cell.size()) throw std::invalid_argument(cell);
        labels[name] = value;
      } catch (const std::exception&) {
        throw Error(fmt::format("{}: column \"{}\" is \"{}\", expected an integer label", where, name, cell));
      }
    }
    if (!labels.empty()) study["labels"] = labels;
    const auto paths = split_paths(fields[scan_col]);
    if (paths.empty()) throw Error(fmt::format("{}: column \"{}\" is empty", where, options.scan_column));
    const auto names = name_col ? split_paths(fields[*name_col]) : std::vector<std::string>{};
    json scans = json::array();
    for (size_t i = 0; i < paths.size(); ++i) {
      const fs::path source = fs::path(paths[i]).is_absolute() ? fs::path(paths[i]) : csv_dir / paths[i];
      const fs::path relative = source.lexically_normal().lexically_relative(out_dir);
      if (relative.empty() || *relative.begin() == "..") {
        throw Error(
            fmt::format("{}: scan \"{}\" is outside the manifest's folder {}; write the manifest in "
                        "a folder above the data",
                        where, paths[i], out_dir.string()));
      }
      json scan = {{"path", relative.string()}};
      if (i < names.size()) scan["name"] = names[i];
      scans.push_back(std::move(scan));
    }
    auto [it, inserted] = studies.emplace(id, study);
    if (inserted) {
      order.push_back(id);
    } else {
      json& existing = it->second;
      for (const char* field : {"modality", "split", "report", "labels"}) {
        if (study.value(field, json()) != existing.value(field, json())) {
          throw Error(fmt::format("{}: study \"{}\" has a different \"{}\" than on an earlier row", where, id,
                                  field));
        }
      }
    }
    for (auto& scan : scans)
      it->second["scans"].push_back(std::move(scan));
  }
  if (order.empty()) throw Error(fmt::format("{}: no rows", options.csv));
  std::string manifest;
  for (const auto& id : order)
    manifest += studies.at(id).dump() + "\n";
  write_file_atomic(options.out, manifest);
  return static_cast<int64_t>(order.size());
}

}  // namespace hlip::data
