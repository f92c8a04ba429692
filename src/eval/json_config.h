#pragma once
// Task files and VQA answer sets are JSON configs given either as a file path or as the name of one of the
// files embedded from configs/<folder>/ at build time.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace hlip::eval::detail {

struct JsonConfig {
  nlohmann::json root;
  std::string origin;  // the path, or "configs/<folder>/<name>.json (embedded)"
};

// The names of `embedded`, sorted (for "known: ..." in messages and listings).
std::vector<std::string> embedded_names(
    const std::vector<std::pair<std::string_view, std::string_view>>& embedded);

// `name_or_path` read as a file when one exists (errors name the file and say it is not valid JSON), else
// the embedded config of that name; nullopt when it is neither.
std::optional<JsonConfig> read_json_config(
    const std::string& name_or_path,
    const std::vector<std::pair<std::string_view, std::string_view>>& embedded, const std::string& folder);

}  // namespace hlip::eval::detail
