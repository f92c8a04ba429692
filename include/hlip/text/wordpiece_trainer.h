#pragma once
// Learning a WordPiece vocabulary from text, as Hugging Face tokenizers' WordPieceTrainer does (the recipe of
// BertWordPieceTokenizer.train), so training from scratch works offline.
//
//   hlip::text::WordPieceTrainerOptions options;
//   options.vocab_size = 8000;
//   auto tokens = hlip::text::learn_wordpiece_vocab(reports, options);
//   hlip::text::write_vocab("vocab.txt", tokens);   // then Tokenizer(Vocab::read("vocab.txt"))
//
// Texts are split into words by the basic tokenizer (lowercased and accent-stripped by default). The
// vocabulary is: the special tokens, the alphabet (single characters, by code point), the "##" forms of the
// characters seen inside words, then BPE merges, most frequent pair first, until vocab_size tokens or no pair
// occurs min_frequency times. Unlike Hugging Face's trainer (which iterates a hash map) the result is
// deterministic: words are visited in code-point order and equal counts merge the pair of smaller ids first.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "hlip/text/basic_tokenizer.h"

namespace hlip::text {

struct WordPieceTrainerOptions {
  int64_t vocab_size = 30000;  // the alphabet and special tokens are kept even when they exceed it
  int64_t min_frequency = 2;   // a pair must occur this often (counting repeated words) to be merged
  std::optional<int64_t> limit_alphabet = 1000;  // keep the most frequent characters only; unset: all
  std::vector<std::string> special_tokens = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
  std::string continuing_subword_prefix = "##";
  BasicTokenizerOptions words;  // must match the tokenizer that will use the vocabulary
};

class WordPieceTrainer {
 public:
  explicit WordPieceTrainer(WordPieceTrainerOptions options = {});

  // Counts the words of one text. Invalid UTF-8 throws hlip::Error naming the text's number and byte offset.
  void add_text(std::string_view text);
  // The vocabulary, in id order.
  std::vector<std::string> train() const;

  std::size_t distinct_words() const { return word_counts_.size(); }

 private:
  WordPieceTrainerOptions options_;
  BasicTokenizer basic_;
  std::unordered_map<std::u32string, int64_t> word_counts_;
  std::size_t texts_seen_ = 0;
};

std::vector<std::string> learn_wordpiece_vocab(const std::vector<std::string>& texts,
                                               const WordPieceTrainerOptions& options = {});

}  // namespace hlip::text
