#pragma once
// Hugging Face-compatible BERT tokenizer (WordPiece, as BertTokenizer / BertTokenizerFast).
//
//   // A folder with vocab.txt and, optionally, tokenizer_config.json / special_tokens_map.json:
//   auto tokenizer = hlip::text::Tokenizer::from_pretrained("BiomedBERT");
//   tokenizer.tokenize("Aspirin inhibits COX-1.");   // {"aspirin", "inhibits", "cox", "-", "1", "."}
//   auto batch = tokenizer.encode_batch(reports, hlip::text::EncodeOptions::fixed_length(77));
//   batch.input_ids[0];       // [CLS] ... [SEP] [PAD] ...: 77 ids
//   batch.attention_mask[0];  // 1 ... 1 0 ... 0
//
// A text goes through: special tokens cut out verbatim, the basic tokenizer (basic_tokenizer.h), WordPiece
// (wordpiece.h), then truncation, [CLS]/[SEP], token-type ids and padding as Hugging Face's __call__ does.
// docs/text.md lists what is reproduced and where the Python and Rust implementations differ.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "hlip/text/basic_tokenizer.h"
#include "hlip/text/vocab.h"
#include "hlip/text/wordpiece.h"

namespace hlip::text {

enum class Side { left, right };

// The options of BertTokenizer's constructor and tokenizer_config.json, with the same names and defaults.
struct TokenizerOptions {
  bool do_lower_case = true;
  std::optional<bool> strip_accents;  // unset: follow do_lower_case
  bool tokenize_chinese_chars = true;
  bool do_basic_tokenize = true;  // false: WordPiece straight on whitespace-split text
  std::vector<std::string> never_split;
  std::string unk_token = "[UNK]";
  std::string sep_token = "[SEP]";
  std::string pad_token = "[PAD]";
  std::string cls_token = "[CLS]";
  std::string mask_token = "[MASK]";
  std::vector<std::string> additional_special_tokens;
  int max_input_chars_per_word = 100;
  // Unset: no limit, as Hugging Face when the tokenizer declares none (BiomedBERT). Used when truncating or
  // padding to max_length without an explicit max_length.
  std::optional<int64_t> model_max_length;
  Side padding_side = Side::right;
  Side truncation_side = Side::right;
  bool clean_up_tokenization_spaces = true;
  HfFlavor flavor = HfFlavor::fast;
};

// Reads the options of a tokenizer folder: tokenizer_config.json, then special_tokens_map.json (which wins),
// both optional, over `defaults`. A path to a file (a bare vocab.txt) gives `defaults`. Unknown keys are
// ignored; a known key with a wrong type is an hlip::Error naming the file, the key and the value.
TokenizerOptions read_tokenizer_options(const std::filesystem::path& path, TokenizerOptions defaults = {});
// Writes `options` as a tokenizer_config.json that transformers and read_tokenizer_options both read, e.g.
// next to a learned vocab.txt. The flavor is hlip's own and is not written.
void write_tokenizer_config(const std::filesystem::path& file, const TokenizerOptions& options);

enum class Padding {
  none,        // Hugging Face padding=False
  longest,     // padding=True: to the longest sequence of the batch (max_length is ignored)
  max_length,  // padding="max_length": to max_length (longer sequences stay longer unless truncated)
};

enum class Truncation { none, longest_first, only_first, only_second };

// The arguments of Hugging Face's tokenizer __call__.
struct EncodeOptions {
  bool add_special_tokens = true;
  Padding padding = Padding::none;
  // Unset as in Hugging Face: truncates (longest_first) only when max_length is given and padding is none.
  std::optional<Truncation> truncation;
  std::optional<int64_t> max_length;  // unset: model_max_length where truncation or padding needs one
  std::optional<int64_t> pad_to_multiple_of;

  // Model inputs of exactly `length` ids: truncate longest_first and pad to max_length.
  static EncodeOptions fixed_length(int64_t length) {
    EncodeOptions options;
    options.padding = Padding::max_length;
    options.truncation = Truncation::longest_first;
    options.max_length = length;
    return options;
  }

  // Model inputs of at most `length` ids: truncated as fixed_length, padded only to the batch's longest.
  // Under the attention mask a text's features are the same as with fixed_length (padded positions are masked
  // out of attention and pooling); the tower just skips the padding (terse reports are ~15 of 128 positions).
  static EncodeOptions up_to_length(int64_t length) {
    EncodeOptions options = fixed_length(length);
    options.padding = Padding::longest;
    return options;
  }
};

struct Encoding {
  std::vector<int64_t> input_ids;
  std::vector<int64_t> token_type_ids;
  std::vector<int64_t> attention_mask;
  std::vector<int64_t> special_tokens_mask;  // 1 at [CLS]/[SEP]/[PAD]
};

// One row per text; rows have equal length when padded.
struct BatchEncoding {
  std::vector<std::vector<int64_t>> input_ids;
  std::vector<std::vector<int64_t>> token_type_ids;
  std::vector<std::vector<int64_t>> attention_mask;
  std::vector<std::vector<int64_t>> special_tokens_mask;

  std::size_t size() const { return input_ids.size(); }
};

struct DecodeOptions {
  bool skip_special_tokens = false;
  std::optional<bool> clean_up_tokenization_spaces;  // unset: the tokenizer's option
};

// Immutable once built: const methods may run concurrently from several threads.
class Tokenizer {
 public:
  // Throws hlip::Error when unk_token is not in the vocabulary.
  explicit Tokenizer(Vocab vocab, TokenizerOptions options = {});
  // `path`: a vocab.txt, or a folder with vocab.txt and optionally tokenizer_config.json and
  // special_tokens_map.json, as published on model hubs.
  static Tokenizer from_pretrained(const std::filesystem::path& path);

  const Vocab& vocab() const { return wordpiece_.vocab(); }
  const TokenizerOptions& options() const { return options_; }

  // Hugging Face's tokenize(): word pieces without [CLS]/[SEP]. Invalid UTF-8 throws hlip::Error naming the
  // byte offset.
  std::vector<std::string> tokenize(std::string_view text) const;
  // The ids of tokenize(text), without building strings.
  std::vector<int64_t> tokenize_to_ids(std::string_view text) const;

  Encoding encode(std::string_view text, const EncodeOptions& options = {}) const;
  Encoding encode_pair(std::string_view text, std::string_view text_pair,
                       const EncodeOptions& options = {}) const;
  BatchEncoding encode_batch(const std::vector<std::string>& texts, const EncodeOptions& options = {}) const;
  // Pairs: texts[i] is sequence A (token type 0), text_pairs[i] sequence B (token type 1).
  BatchEncoding encode_batch(const std::vector<std::string>& texts,
                             const std::vector<std::string>& text_pairs, const EncodeOptions& options) const;

  // Hugging Face's prepare_for_model: truncation, [CLS]/[SEP], token types and padding for word-piece ids
  // already computed (text_pair_ids, when given, is sequence B).
  Encoding prepare_for_model(std::vector<int64_t> ids, std::optional<std::vector<int64_t>> text_pair_ids,
                             const EncodeOptions& options = {}) const;

  // Joins the tokens, gluing "##" pieces to the piece before; lowercasing and accent stripping stay.
  std::string decode(const std::vector<int64_t>& ids, const DecodeOptions& options = {}) const;
  std::vector<std::string> convert_ids_to_tokens(const std::vector<int64_t>& ids) const;
  // Tokens not in the vocabulary map to the unk id.
  std::vector<int64_t> convert_tokens_to_ids(const std::vector<std::string>& tokens) const;

  int64_t unk_id() const { return wordpiece_.unk_id(); }
  // The ids of [CLS], [SEP] and [PAD]; hlip::Error when the vocabulary lacks the token.
  int64_t cls_id() const;
  int64_t sep_id() const;
  int64_t pad_id() const;
  // unk, sep, pad, cls, mask and the additional special tokens, in that order.
  const std::vector<std::string>& special_tokens() const { return special_tokens_; }

 private:
  struct Resolved;
  void append_ids(std::string_view text, std::vector<int64_t>& ids) const;
  int64_t required_id(const std::string& token, const char* field) const;
  Resolved resolve(const EncodeOptions& options) const;
  Encoding encode_one(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b,
                      const Resolved& resolved) const;
  void pad(Encoding& encoding, std::size_t length) const;
  void pad_all(std::vector<Encoding>& encodings, const Resolved& resolved) const;
  BatchEncoding encode_many(const std::vector<std::string>& texts, const std::vector<std::string>* text_pairs,
                            const EncodeOptions& options) const;

  TokenizerOptions options_;
  BasicTokenizer basic_;
  WordPiece wordpiece_;
  std::vector<std::string> special_tokens_;
  std::vector<std::u32string> special_tokens_u32_;  // longest first, for matching in text
  std::vector<int64_t> special_ids_;
};

}  // namespace hlip::text
