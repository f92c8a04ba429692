#pragma once
// A WordPiece vocabulary: one token per line of vocab.txt, id = 0-based line number.
//
//   auto vocab = hlip::text::Vocab::read("BiomedBERT/vocab.txt");
//   vocab.find("[CLS]");        // 2
//   vocab.token(2);             // "[CLS]"
//
// As in Hugging Face, a token listed twice maps to its later line. Trailing whitespace of each line
// (including a "\r") is not part of the token, as in the Rust library. The vocabulary is immutable and
// cheap to copy: copies share one table.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace hlip::text {

class Vocab {
 public:
  Vocab();
  // `source` names the vocabulary in error messages (usually its file).
  explicit Vocab(std::vector<std::string> tokens, std::string source = "vocabulary");

  // Reads vocab.txt, or <folder>/vocab.txt when `path` is a folder. Errors name the file and line.
  static Vocab read(const std::filesystem::path& path);
  void write(const std::filesystem::path& file) const;

  int64_t size() const { return static_cast<int64_t>(data_->tokens.size()); }
  std::optional<int64_t> find(std::string_view token) const;
  bool contains(std::string_view token) const { return find(token).has_value(); }
  // Throws hlip::Error naming the id when it is out of range.
  const std::string& token(int64_t id) const;
  const std::vector<std::string>& tokens() const { return data_->tokens; }
  const std::string& source() const { return data_->source; }

 private:
  struct Data {
    std::vector<std::string> tokens;
    std::string source;
    // Keys view into `tokens`, which never changes after construction.
    std::unordered_map<std::string_view, int64_t> ids;
  };
  std::shared_ptr<const Data> data_;
};

// Writes one token per line; throws hlip::Error when a token holds a line break or the file cannot be
// written.
void write_vocab(const std::filesystem::path& file, const std::vector<std::string>& tokens);

}  // namespace hlip::text
