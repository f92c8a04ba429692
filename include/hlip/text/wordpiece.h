#pragma once
// Greedy longest-match-first WordPiece, as BERT defines it.
//
//   hlip::text::WordPiece wordpiece(hlip::text::Vocab::read("vocab.txt"));
//   wordpiece.tokenize("unwanted running");     // {"un", "##want", "##ed", "runn", "##ing"}
//
// At each position the longest vocabulary entry wins, spelled with "##" after the word's first piece. A word
// with any position that matches nothing, or with more than max_input_chars_per_word code points, becomes
// one unk_token as a whole.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hlip/text/vocab.h"

namespace hlip::text {

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  int max_input_chars_per_word = 100;
  std::string continuing_subword_prefix = "##";
};

class WordPiece {
 public:
  // Throws hlip::Error when unk_token is not in the vocabulary.
  explicit WordPiece(Vocab vocab, WordPieceOptions options = {});

  // Reusable buffers for encode_word, so that encoding allocates per text, not per word.
  struct Buffers {
    std::string utf8;
    std::vector<std::size_t> offsets;
  };
  // Appends the ids of the pieces of one word (no whitespace inside) to `ids`.
  void encode_word(std::u32string_view word, std::vector<int64_t>& ids, Buffers& buffers) const;

  // Hugging Face's WordpieceTokenizer.tokenize: splits `text` on whitespace only, then applies WordPiece.
  std::vector<std::string> tokenize(std::string_view text) const;

  const Vocab& vocab() const { return vocab_; }
  const WordPieceOptions& options() const { return options_; }
  int64_t unk_id() const { return unk_id_; }

 private:
  // The id of prefix + rest, if the vocabulary has it.
  std::optional<int64_t> find_continuation(std::string_view rest) const;

  Vocab vocab_;
  WordPieceOptions options_;
  int64_t unk_id_ = 0;
  // Keys view into the vocabulary's tokens: `continuations` holds the tokens that start with the prefix,
  // keyed without it, so a lookup needs no string building.
  std::unordered_map<std::string_view, int64_t> continuations_;
  std::size_t longest_token_chars_ = 0;
  std::size_t longest_continuation_chars_ = 0;
};

}  // namespace hlip::text
