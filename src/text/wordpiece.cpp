#include "hlip/text/wordpiece.h"

#include <fmt/format.h>

#include <algorithm>

#include "hlip/core/error.h"
#include "unicode.h"

namespace hlip::text {
namespace {

std::size_t count_code_points(std::string_view utf8) {
  return static_cast<std::size_t>(std::count_if(
      utf8.begin(), utf8.end(), [](char byte) { return (static_cast<unsigned char>(byte) & 0xC0) != 0x80; }));
}

}  // namespace

WordPiece::WordPiece(Vocab vocab, WordPieceOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  const auto unk = vocab_.find(options_.unk_token);
  if (!unk) {
    throw Error(
        fmt::format("{}: unk_token \"{}\" is not in the vocabulary", vocab_.source(), options_.unk_token));
  }
  unk_id_ = *unk;
  const std::string_view prefix = options_.continuing_subword_prefix;
  const std::vector<std::string>& tokens = vocab_.tokens();
  for (std::size_t id = 0; id < tokens.size(); ++id) {
    const std::string_view token = tokens[id];
    longest_token_chars_ = std::max(longest_token_chars_, count_code_points(token));
    if (token.size() > prefix.size() && token.substr(0, prefix.size()) == prefix) {
      const std::string_view rest = token.substr(prefix.size());
      continuations_[rest] = static_cast<int64_t>(id);
      longest_continuation_chars_ = std::max(longest_continuation_chars_, count_code_points(rest));
    }
  }
}

void WordPiece::encode_word(std::u32string_view word, std::vector<int64_t>& ids, Buffers& buffers) const {
  const std::size_t n = word.size();
  if (n == 0) return;
  if (n > static_cast<std::size_t>(options_.max_input_chars_per_word)) {
    ids.push_back(unk_id_);
    return;
  }
  std::string& utf8 = buffers.utf8;
  std::vector<std::size_t>& offsets = buffers.offsets;
  utf8.clear();
  offsets.clear();
  for (char32_t c : word) {
    offsets.push_back(utf8.size());
    unicode::append_utf8(c, utf8);
  }
  offsets.push_back(utf8.size());

  const std::size_t first_piece = ids.size();
  std::size_t start = 0;
  while (start < n) {
    const std::size_t longest = start == 0 ? longest_token_chars_ : longest_continuation_chars_;
    std::size_t end = std::min(n, start + longest);
    bool found = false;
    for (; end > start; --end) {
      const std::string_view piece(utf8.data() + offsets[start], offsets[end] - offsets[start]);
      const std::optional<int64_t> id = start == 0 ? vocab_.find(piece) : find_continuation(piece);
      if (id) {
        ids.push_back(*id);
        found = true;
        break;
      }
    }
    if (!found) {
      ids.resize(first_piece);
      ids.push_back(unk_id_);
      return;
    }
    start = end;
  }
}

std::optional<int64_t> WordPiece::find_continuation(std::string_view rest) const {
  const auto it = continuations_.find(rest);
  if (it == continuations_.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> WordPiece::tokenize(std::string_view text) const {
  std::u32string decoded;
  unicode::decode_utf8(text, decoded, "text");
  std::vector<int64_t> ids;
  Buffers buffers;
  unicode::for_each_whitespace_separated(decoded,
                                         [&](std::u32string_view word) { encode_word(word, ids, buffers); });
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids)
    tokens.push_back(vocab_.token(id));
  return tokens;
}

}  // namespace hlip::text
