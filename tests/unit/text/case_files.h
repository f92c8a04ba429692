#pragma once
// Loading the tokenizer test vectors in tests/data/tokenizer (see SOURCE.md there).

#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace hlip::text::testing {

inline std::string tokenizer_data(const std::string& name) {
  return std::string(HLIP_TEST_DATA_DIR) + "/tokenizer/" + name;
}

inline std::vector<nlohmann::json> read_jsonl(const std::string& name) {
  std::ifstream in(tokenizer_data(name));
  if (!in) throw std::runtime_error("cannot open " + tokenizer_data(name));
  std::vector<nlohmann::json> rows;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(nlohmann::json::parse(line));
  }
  return rows;
}

// A gtest-friendly name for a case id.
inline std::string test_name(const nlohmann::json& row) {
  std::string name = row.at("id").get<std::string>();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

}  // namespace hlip::text::testing
