#pragma once
// BERT's "basic tokenizer": the text clean-up and word splitting that run before WordPiece.
//
//   hlip::text::BasicTokenizer basic;                   // uncased, as BiomedBERT
//   basic.tokenize(" \tHeLLo!how  \n Are yoU?  ");      // {"hello", "!", "how", "are", "you", "?"}
//
// Steps, per Hugging Face: clean the text (control characters deleted, whitespace made a space), put
// spaces around CJK ideographs, split on whitespace, then for each word (unless listed in never_split)
// lowercase, strip accents (NFD, drop Mn) and split off every punctuation character.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hlip::text {

// Which Hugging Face implementation to follow where the two disagree (see docs/text.md). They agree on
// every published test vector; the differences are in rare code points and in pair truncation.
enum class HfFlavor {
  fast,  // Rust `tokenizers` (BertTokenizerFast), what AutoTokenizer returns
  slow,  // Python transformers BertTokenizer
};

struct BasicTokenizerOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follow do_lower_case
  bool tokenize_chinese_chars = true;
  bool clean_text = true;
  std::vector<std::string> never_split;  // words kept exactly as written (no lowercasing or splitting)
  HfFlavor flavor = HfFlavor::fast;

  bool strips_accents() const { return strip_accents.value_or(do_lower_case); }
};

// Words stored as spans of one code-point buffer, so that splitting a text allocates per text rather than
// per word or character.
struct Words {
  std::u32string text;
  std::vector<std::pair<std::size_t, std::size_t>> spans;  // [begin, end) into text

  void clear() {
    text.clear();
    spans.clear();
  }
  std::size_t size() const { return spans.size(); }
  std::u32string_view operator[](std::size_t i) const {
    return std::u32string_view(text).substr(spans[i].first, spans[i].second - spans[i].first);
  }
};

class BasicTokenizer {
 public:
  explicit BasicTokenizer(BasicTokenizerOptions options = {});

  const BasicTokenizerOptions& options() const { return options_; }

  // Throws hlip::Error naming the byte offset when `text` is not valid UTF-8.
  std::vector<std::string> tokenize(std::string_view text) const;
  // Appends the words of `text` (already decoded) to `out`.
  void split(std::u32string_view text, Words& out) const;

 private:
  bool is_never_split(std::u32string_view word) const;

  BasicTokenizerOptions options_;
  std::vector<std::u32string> never_split_;
};

// The Rust library's BertNormalizer: cleaning, CJK padding, accent stripping and lowercasing applied to the
// whole text, which keeps its whitespace. Field names follow the Rust library.
struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // unset: follow lowercase
  bool lowercase = true;
  HfFlavor flavor = HfFlavor::fast;
};
std::string bert_normalize(std::string_view text, const BertNormalizerOptions& options = {});

// The Rust library's BertPreTokenizer: split on whitespace, then split off punctuation; no normalisation.
std::vector<std::string> bert_pre_tokenize(std::string_view text);

}  // namespace hlip::text
