#include "hlip/text/vocab.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <fstream>

#include "hlip/core/error.h"
#include "unicode.h"

namespace hlip::text {
namespace {

bool is_ascii_whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

}  // namespace

Vocab::Vocab() : Vocab(std::vector<std::string>{}) {}

Vocab::Vocab(std::vector<std::string> tokens, std::string source) {
  auto data = std::make_shared<Data>();
  data->tokens = std::move(tokens);
  data->source = std::move(source);
  data->ids.reserve(data->tokens.size());
  for (std::size_t i = 0; i < data->tokens.size(); ++i) {
    data->ids[std::string_view(data->tokens[i])] = static_cast<int64_t>(i);
  }
  data_ = std::move(data);
}

Vocab Vocab::read(const std::filesystem::path& path) {
  const std::filesystem::path file = std::filesystem::is_directory(path) ? path / "vocab.txt" : path;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open vocabulary: {}", file.string(), std::strerror(errno)));
  std::vector<std::string> tokens;
  std::string line;
  std::u32string decoded;
  while (std::getline(in, line)) {
    while (!line.empty() && is_ascii_whitespace(line.back()))
      line.pop_back();
    unicode::decode_utf8(line, decoded, fmt::format("{}:{}", file.string(), tokens.size() + 1));
    tokens.push_back(line);
  }
  if (in.bad()) throw Error(fmt::format("{}: read error", file.string()));
  if (tokens.empty()) throw Error(fmt::format("{}: the vocabulary is empty", file.string()));
  return Vocab(std::move(tokens), file.string());
}

void Vocab::write(const std::filesystem::path& file) const {
  write_vocab(file, data_->tokens);
}

std::optional<int64_t> Vocab::find(std::string_view token) const {
  const auto it = data_->ids.find(token);
  if (it == data_->ids.end()) return std::nullopt;
  return it->second;
}

const std::string& Vocab::token(int64_t id) const {
  if (id < 0 || id >= size()) {
    throw Error(fmt::format("{}: token id {} is out of range [0, {})", data_->source, id, size()));
  }
  return data_->tokens[static_cast<std::size_t>(id)];
}

void write_vocab(const std::filesystem::path& file, const std::vector<std::string>& tokens) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    const std::string& token = tokens[i];
    if (token.find_first_of("\r\n") != std::string::npos) {
      throw Error(fmt::format("{}: token {} holds a line break and cannot be written", file.string(), i));
    }
    // Readers drop trailing whitespace, so such a token would not read back as written.
    if (!token.empty() && is_ascii_whitespace(token.back())) {
      throw Error(fmt::format("{}: token {} (\"{}\") ends in whitespace", file.string(), i, token));
    }
  }
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) throw Error(fmt::format("{}: cannot write vocabulary: {}", file.string(), std::strerror(errno)));
  for (const std::string& token : tokens)
    out << token << '\n';
  out.flush();
  if (!out) throw Error(fmt::format("{}: write error", file.string()));
}

}  // namespace hlip::text
