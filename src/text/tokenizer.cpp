#include "hlip/text/tokenizer.h"

#include <fmt/format.h>

#include <algorithm>

#include "hlip/core/error.h"
#include "unicode.h"

namespace hlip::text {
namespace {

BasicTokenizerOptions basic_options(const TokenizerOptions& options) {
  BasicTokenizerOptions basic;
  basic.do_lower_case = options.do_lower_case;
  basic.strip_accents = options.strip_accents;
  basic.tokenize_chinese_chars = options.tokenize_chinese_chars;
  basic.never_split = options.never_split;
  basic.flavor = options.flavor;
  return basic;
}

WordPieceOptions wordpiece_options(const TokenizerOptions& options) {
  WordPieceOptions wordpiece;
  wordpiece.unk_token = options.unk_token;
  wordpiece.max_input_chars_per_word = options.max_input_chars_per_word;
  return wordpiece;
}

bool starts_with(std::u32string_view text, std::size_t at, std::u32string_view prefix) {
  return text.size() - at >= prefix.size() && text.compare(at, prefix.size(), prefix) == 0;
}

void replace_all(std::string& text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  std::size_t start = 0;
  for (std::size_t at = text.find(from); at != std::string::npos; at = text.find(from, start)) {
    out.append(text, start, at - start);
    out.append(to);
    start = at + from.size();
  }
  out.append(text, start, std::string::npos);
  text.swap(out);
}

// Hugging Face's clean_up_tokenization, replacements in its order.
void clean_up_tokenization(std::string& text) {
  static const std::pair<std::string_view, std::string_view> kReplacements[] = {
      {" .", "."},     {" ?", "?"},   {" !", "!"},   {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
  };
  for (const auto& [from, to] : kReplacements)
    replace_all(text, from, to);
}

void truncate(std::vector<int64_t>& ids, std::size_t keep, Side side) {
  if (ids.size() <= keep) return;
  if (side == Side::right) {
    ids.resize(keep);
  } else {
    ids.erase(ids.begin(), ids.end() - static_cast<std::ptrdiff_t>(keep));
  }
}

// Pair truncation, longest_first, to `budget` word pieces in all: the lengths A and B keep.
std::pair<std::size_t, std::size_t> longest_first_lengths(std::size_t a, std::size_t b, std::size_t budget,
                                                          HfFlavor flavor) {
  if (a + b <= budget) return {a, b};
  if (flavor == HfFlavor::slow) {
    // transformers' truncate_sequences: cut the longer down towards the shorter, then share the rest; when
    // B is not the shorter one, B gives up the odd piece.
    const std::size_t remove = a + b - budget;
    const std::size_t first = std::min(a > b ? a - b : b - a, remove);
    const std::size_t second = remove - first;
    if (a > b) return {a - (first + second / 2), b - (second - second / 2)};
    return {a - second / 2, b - (first + second - second / 2)};
  }
  // tokenizers' utils/truncation.rs: the longer keeps max(shorter, budget - shorter); if both must be cut,
  // the shorter keeps budget / 2 and the longer the rest (B counts as the longer when they are equal).
  const bool swap = a > b;
  std::size_t shorter = swap ? b : a;
  std::size_t longer = swap ? a : b;
  if (shorter > budget) {
    shorter = budget / 2;
    longer = shorter + budget % 2;
  } else {
    longer = std::max(shorter, budget - shorter);
  }
  if (shorter + longer > budget) {
    shorter = budget / 2;
    longer = shorter + budget % 2;
  }
  return swap ? std::pair{longer, shorter} : std::pair{shorter, longer};
}

}  // namespace

struct Tokenizer::Resolved {
  bool add_special_tokens = true;
  Padding padding = Padding::none;
  Truncation truncation = Truncation::none;
  std::optional<int64_t> max_length;
  std::optional<int64_t> pad_to_multiple_of;
};

Tokenizer::Tokenizer(Vocab vocab, TokenizerOptions options)
    : options_(std::move(options)),
      basic_(basic_options(options_)),
      wordpiece_(std::move(vocab), wordpiece_options(options_)) {
  special_tokens_ = {options_.unk_token, options_.sep_token, options_.pad_token, options_.cls_token,
                     options_.mask_token};
  special_tokens_.insert(special_tokens_.end(), options_.additional_special_tokens.begin(),
                         options_.additional_special_tokens.end());
  for (const std::string& token : special_tokens_) {
    if (token.empty()) continue;
    std::u32string decoded;
    unicode::decode_utf8(token, decoded, fmt::format("special token \"{}\"", token));
    special_tokens_u32_.push_back(std::move(decoded));
    if (const auto id = this->vocab().find(token)) special_ids_.push_back(*id);
  }
  // At one position the longest special token wins, as in Hugging Face's trie / Aho-Corasick split.
  std::stable_sort(special_tokens_u32_.begin(), special_tokens_u32_.end(),
                   [](const std::u32string& x, const std::u32string& y) { return x.size() > y.size(); });
  std::sort(special_ids_.begin(), special_ids_.end());
  special_ids_.erase(std::unique(special_ids_.begin(), special_ids_.end()), special_ids_.end());
  if (options_.max_input_chars_per_word < 1) {
    throw Error(fmt::format("tokenizer options: max_input_chars_per_word is {}, must be at least 1",
                            options_.max_input_chars_per_word));
  }
}

Tokenizer Tokenizer::from_pretrained(const std::filesystem::path& path) {
  return Tokenizer(Vocab::read(path), read_tokenizer_options(path));
}

int64_t Tokenizer::required_id(const std::string& token, const char* field) const {
  const auto id = vocab().find(token);
  if (!id) throw Error(fmt::format("{}: {} \"{}\" is not in the vocabulary", vocab().source(), field, token));
  return *id;
}

int64_t Tokenizer::cls_id() const {
  return required_id(options_.cls_token, "cls_token");
}
int64_t Tokenizer::sep_id() const {
  return required_id(options_.sep_token, "sep_token");
}
int64_t Tokenizer::pad_id() const {
  return required_id(options_.pad_token, "pad_token");
}

namespace {

// Emits one (id, literal) per token of `text`: literal is the token's own text for special tokens and
// never-split words (which keep their spelling even when not in the vocabulary), empty for word pieces.
template <typename Emit>
void for_each_token(std::string_view text, const TokenizerOptions& options, const BasicTokenizer& basic,
                    const WordPiece& wordpiece, const std::vector<std::u32string>& special_tokens,
                    Emit&& emit) {
  std::u32string decoded;
  unicode::decode_utf8(text, decoded, "text");
  Words words;
  WordPiece::Buffers buffers;
  std::vector<int64_t> ids;
  std::string utf8;
  const Vocab& vocab = wordpiece.vocab();
  auto id_of_literal = [&](std::u32string_view literal) {
    utf8.clear();
    unicode::append_utf8(literal, utf8);
    return vocab.find(utf8).value_or(wordpiece.unk_id());
  };
  auto emit_segment = [&](std::u32string_view segment) {
    words.clear();
    if (options.do_basic_tokenize) {
      basic.split(segment, words);
    } else {
      words.text.assign(segment);
      unicode::for_each_whitespace_separated(segment, [&](std::u32string_view word) {
        const auto begin = static_cast<std::size_t>(word.data() - segment.data());
        words.spans.emplace_back(begin, begin + word.size());
      });
    }
    for (std::size_t w = 0; w < words.size(); ++w) {
      const std::u32string_view word = words[w];
      const bool never_split =
          options.do_basic_tokenize &&
          std::any_of(options.never_split.begin(), options.never_split.end(), [&](const std::string& kept) {
            utf8.clear();
            unicode::append_utf8(word, utf8);
            return utf8 == kept;
          });
      if (never_split) {
        emit(id_of_literal(word), word);
        continue;
      }
      ids.clear();
      wordpiece.encode_word(word, ids, buffers);
      for (int64_t id : ids) {
        emit(id, std::u32string_view());
      }
    }
  };

  // Most positions cannot start a special token; their first characters (usually just "[") rule them out.
  std::u32string first_chars;
  for (const std::u32string& token : special_tokens) {
    if (first_chars.find(token[0]) == std::u32string::npos) first_chars.push_back(token[0]);
  }
  const std::u32string_view all(decoded);
  std::size_t segment_begin = 0;
  std::size_t i = 0;
  while (i < all.size()) {
    if (first_chars.find(all[i]) == std::u32string::npos) {
      ++i;
      continue;
    }
    const auto special =
        std::find_if(special_tokens.begin(), special_tokens.end(),
                     [&](const std::u32string& token) { return starts_with(all, i, token); });
    if (special == special_tokens.end()) {
      ++i;
      continue;
    }
    emit_segment(all.substr(segment_begin, i - segment_begin));
    emit(id_of_literal(*special), std::u32string_view(*special));
    i += special->size();
    segment_begin = i;
  }
  emit_segment(all.substr(segment_begin));
}

}  // namespace

std::vector<std::string> Tokenizer::tokenize(std::string_view text) const {
  std::vector<std::string> tokens;
  for_each_token(text, options_, basic_, wordpiece_, special_tokens_u32_,
                 [&](int64_t id, std::u32string_view literal) {
                   tokens.push_back(literal.empty() ? vocab().token(id) : unicode::to_utf8(literal));
                 });
  return tokens;
}

std::vector<int64_t> Tokenizer::tokenize_to_ids(std::string_view text) const {
  std::vector<int64_t> ids;
  append_ids(text, ids);
  return ids;
}

void Tokenizer::append_ids(std::string_view text, std::vector<int64_t>& ids) const {
  for_each_token(text, options_, basic_, wordpiece_, special_tokens_u32_,
                 [&](int64_t id, std::u32string_view) { ids.push_back(id); });
}

Tokenizer::Resolved Tokenizer::resolve(const EncodeOptions& options) const {
  Resolved resolved;
  resolved.add_special_tokens = options.add_special_tokens;
  resolved.padding = options.padding;
  resolved.max_length = options.max_length;
  resolved.pad_to_multiple_of = options.pad_to_multiple_of;
  // Hugging Face: a max_length without padding and without a truncation choice means "truncate".
  resolved.truncation = options.truncation.value_or(
      options.max_length && options.padding == Padding::none ? Truncation::longest_first : Truncation::none);
  if (!resolved.max_length) {
    // Without any max_length Hugging Face quietly neither pads to nor truncates at max_length.
    if (resolved.padding == Padding::max_length) {
      if (options_.model_max_length) {
        resolved.max_length = options_.model_max_length;
      } else {
        resolved.padding = Padding::none;
      }
    }
    if (resolved.truncation != Truncation::none) {
      if (options_.model_max_length) {
        resolved.max_length = options_.model_max_length;
      } else {
        resolved.truncation = Truncation::none;
      }
    }
  }
  if (resolved.max_length && *resolved.max_length < 0) {
    throw Error(fmt::format("encode options: max_length is {}, must not be negative", *resolved.max_length));
  }
  if (resolved.pad_to_multiple_of && *resolved.pad_to_multiple_of < 1) {
    throw Error(fmt::format("encode options: pad_to_multiple_of is {}, must be at least 1",
                            *resolved.pad_to_multiple_of));
  }
  if (resolved.truncation != Truncation::none && resolved.padding == Padding::max_length &&
      resolved.pad_to_multiple_of && *resolved.max_length % *resolved.pad_to_multiple_of != 0) {
    throw Error(fmt::format("encode options: max_length {} is not a multiple of pad_to_multiple_of {}",
                            *resolved.max_length, *resolved.pad_to_multiple_of));
  }
  return resolved;
}

Encoding Tokenizer::encode_one(std::vector<int64_t> a, std::optional<std::vector<int64_t>> b,
                               const Resolved& resolved) const {
  const std::size_t specials = resolved.add_special_tokens ? (b ? 3 : 2) : 0;
  if (resolved.truncation != Truncation::none && resolved.max_length) {
    const auto max_length = static_cast<std::size_t>(*resolved.max_length);
    if (max_length < specials) {
      throw Error(fmt::format("encode options: max_length {} leaves no room for the {} special tokens",
                              max_length, specials));
    }
    const std::size_t budget = max_length - specials;
    const std::size_t total = a.size() + (b ? b->size() : 0);
    if (total > budget) {
      const std::size_t remove = total - budget;
      const Side side = options_.truncation_side;
      if (resolved.truncation == Truncation::only_second && !b) {
        throw Error("encode options: truncation only_second needs text pairs");
      }
      if (!b || resolved.truncation == Truncation::only_first ||
          resolved.truncation == Truncation::only_second) {
        std::vector<int64_t>& target = resolved.truncation == Truncation::only_second ? *b : a;
        const bool keeps_none_allowed = !b;  // a single text may lose all its pieces (the Rust library)
        if (target.size() < remove || (target.size() == remove && !keeps_none_allowed)) {
          throw Error(
              fmt::format("encode options: cannot remove {} word pieces from a sequence of {} "
                          "(max_length {})",
                          remove, target.size(), max_length));
        }
        truncate(target, target.size() - remove, side);
      } else {
        const auto [keep_a, keep_b] = longest_first_lengths(a.size(), b->size(), budget, options_.flavor);
        truncate(a, keep_a, side);
        truncate(*b, keep_b, side);
      }
    }
  }

  Encoding encoding;
  std::vector<int64_t>& ids = encoding.input_ids;
  std::vector<int64_t>& types = encoding.token_type_ids;
  std::vector<int64_t>& special = encoding.special_tokens_mask;
  const std::size_t length = a.size() + (b ? b->size() : 0) + specials;
  ids.reserve(length);
  types.reserve(length);
  special.reserve(length);
  auto append = [&](const std::vector<int64_t>& pieces, int64_t type) {
    ids.insert(ids.end(), pieces.begin(), pieces.end());
    types.insert(types.end(), pieces.size(), type);
    special.insert(special.end(), pieces.size(), 0);
  };
  auto append_special = [&](int64_t id, int64_t type) {
    ids.push_back(id);
    types.push_back(type);
    special.push_back(1);
  };
  if (resolved.add_special_tokens) append_special(cls_id(), 0);
  append(a, 0);
  if (resolved.add_special_tokens) append_special(sep_id(), 0);
  if (b) {
    append(*b, 1);
    if (resolved.add_special_tokens) append_special(sep_id(), 1);
  }
  encoding.attention_mask.assign(ids.size(), 1);
  return encoding;
}

void Tokenizer::pad(Encoding& encoding, std::size_t length) const {
  if (encoding.input_ids.size() >= length) return;
  const std::size_t missing = length - encoding.input_ids.size();
  const int64_t pad = pad_id();
  auto extend = [&](std::vector<int64_t>& values, int64_t value) {
    if (options_.padding_side == Side::right) {
      values.insert(values.end(), missing, value);
    } else {
      values.insert(values.begin(), missing, value);
    }
  };
  extend(encoding.input_ids, pad);
  extend(encoding.token_type_ids, 0);
  extend(encoding.attention_mask, 0);
  extend(encoding.special_tokens_mask, 1);
}

void Tokenizer::pad_all(std::vector<Encoding>& encodings, const Resolved& resolved) const {
  if (resolved.padding == Padding::none) return;
  std::size_t length = 0;
  if (resolved.padding == Padding::longest) {
    for (const Encoding& encoding : encodings)
      length = std::max(length, encoding.input_ids.size());
  } else {
    length = static_cast<std::size_t>(*resolved.max_length);
  }
  if (resolved.pad_to_multiple_of) {
    const auto multiple = static_cast<std::size_t>(*resolved.pad_to_multiple_of);
    length = (length + multiple - 1) / multiple * multiple;
  }
  for (Encoding& encoding : encodings)
    pad(encoding, length);
}

BatchEncoding Tokenizer::encode_many(const std::vector<std::string>& texts,
                                     const std::vector<std::string>* text_pairs,
                                     const EncodeOptions& options) const {
  if (text_pairs && text_pairs->size() != texts.size()) {
    throw Error(fmt::format("encode_batch: {} texts but {} text pairs", texts.size(), text_pairs->size()));
  }
  const Resolved resolved = resolve(options);
  std::vector<Encoding> encodings;
  encodings.reserve(texts.size());
  for (std::size_t i = 0; i < texts.size(); ++i) {
    std::vector<int64_t> a;
    append_ids(texts[i], a);
    std::optional<std::vector<int64_t>> b;
    if (text_pairs) {
      b.emplace();
      append_ids((*text_pairs)[i], *b);
    }
    encodings.push_back(encode_one(std::move(a), std::move(b), resolved));
  }
  pad_all(encodings, resolved);
  BatchEncoding batch;
  for (Encoding& encoding : encodings) {
    batch.input_ids.push_back(std::move(encoding.input_ids));
    batch.token_type_ids.push_back(std::move(encoding.token_type_ids));
    batch.attention_mask.push_back(std::move(encoding.attention_mask));
    batch.special_tokens_mask.push_back(std::move(encoding.special_tokens_mask));
  }
  return batch;
}

Encoding Tokenizer::prepare_for_model(std::vector<int64_t> ids,
                                      std::optional<std::vector<int64_t>> text_pair_ids,
                                      const EncodeOptions& options) const {
  const Resolved resolved = resolve(options);
  std::vector<Encoding> encodings;
  encodings.push_back(encode_one(std::move(ids), std::move(text_pair_ids), resolved));
  pad_all(encodings, resolved);
  return std::move(encodings[0]);
}

Encoding Tokenizer::encode(std::string_view text, const EncodeOptions& options) const {
  BatchEncoding batch = encode_many({std::string(text)}, nullptr, options);
  return Encoding{std::move(batch.input_ids[0]), std::move(batch.token_type_ids[0]),
                  std::move(batch.attention_mask[0]), std::move(batch.special_tokens_mask[0])};
}

Encoding Tokenizer::encode_pair(std::string_view text, std::string_view text_pair,
                                const EncodeOptions& options) const {
  const std::vector<std::string> pairs{std::string(text_pair)};
  BatchEncoding batch = encode_many({std::string(text)}, &pairs, options);
  return Encoding{std::move(batch.input_ids[0]), std::move(batch.token_type_ids[0]),
                  std::move(batch.attention_mask[0]), std::move(batch.special_tokens_mask[0])};
}

BatchEncoding Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                      const EncodeOptions& options) const {
  return encode_many(texts, nullptr, options);
}

BatchEncoding Tokenizer::encode_batch(const std::vector<std::string>& texts,
                                      const std::vector<std::string>& text_pairs,
                                      const EncodeOptions& options) const {
  return encode_many(texts, &text_pairs, options);
}

std::vector<std::string> Tokenizer::convert_ids_to_tokens(const std::vector<int64_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids)
    tokens.push_back(vocab().token(id));
  return tokens;
}

std::vector<int64_t> Tokenizer::convert_tokens_to_ids(const std::vector<std::string>& tokens) const {
  std::vector<int64_t> ids;
  ids.reserve(tokens.size());
  for (const std::string& token : tokens)
    ids.push_back(vocab().find(token).value_or(unk_id()));
  return ids;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, const DecodeOptions& options) const {
  std::string text;
  bool first = true;
  for (int64_t id : ids) {
    const std::string& token = vocab().token(id);
    if (options.skip_special_tokens && std::binary_search(special_ids_.begin(), special_ids_.end(), id))
      continue;
    if (!first && token.compare(0, 2, "##") == 0) {
      text.append(token, 2, std::string::npos);
    } else {
      if (!first) text.push_back(' ');
      text.append(token);
    }
    first = false;
  }
  if (options.clean_up_tokenization_spaces.value_or(options_.clean_up_tokenization_spaces)) {
    clean_up_tokenization(text);
  }
  return text;
}

}  // namespace hlip::text
