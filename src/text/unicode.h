#pragma once
// Code-point helpers shared by the tokenizer and the vocabulary trainer (private to hlip_text).
// Character classes follow BERT's definitions (transformers' tokenization_bert.py and tokenizers'
// normalizers/bert.rs), with Unicode properties from utf8proc.

#include <cstddef>
#include <string>
#include <string_view>

#include "hlip/text/basic_tokenizer.h"

namespace hlip::text::unicode {

// Decodes UTF-8 into `out` (cleared first). An invalid sequence throws hlip::Error
// "<context>: invalid UTF-8 at byte offset N (byte 0xXX)".
void decode_utf8(std::string_view text, std::u32string& out, std::string_view context);

void append_utf8(char32_t c, std::string& out);
void append_utf8(std::u32string_view text, std::string& out);
std::string to_utf8(std::u32string_view text);

// TAB, LF, CR, SPACE, category Zs, and the other White_Space characters (U+2028, U+2029, ...).
bool is_whitespace(char32_t c);
// Characters text cleaning deletes: U+0000, U+FFFD and categories Cc, Cf, Co, Cs except TAB, LF, CR;
// the slow tokenizer also deletes unassigned code points (Cn).
bool is_removed_by_cleaning(char32_t c, HfFlavor flavor);
// ASCII 33-47, 58-64, 91-96, 123-126, or any category P*.
bool is_punctuation(char32_t c);
// The CJK ideograph blocks BERT pads with spaces.
bool is_chinese_char(char32_t c, HfFlavor flavor);

// Calls fn(word) for each maximal run of non-whitespace code points of `text`.
template <typename Fn>
void for_each_whitespace_separated(std::u32string_view text, Fn&& fn) {
  std::size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && is_whitespace(text[i])) {
      ++i;
    }
    const std::size_t begin = i;
    while (i < text.size() && !is_whitespace(text[i])) {
      ++i;
    }
    if (begin < i) fn(text.substr(begin, i - begin));
  }
}

// Full lowercase mapping (U+0130 becomes "i" + U+0307), appended to `out`.
void append_lowercase(std::u32string_view text, std::u32string& out);
// Canonical decomposition (NFD) with every non-spacing mark (Mn) removed, appended to `out`.
void append_without_accents(std::u32string_view text, std::u32string& out);
// Canonical composition (NFC), as newer slow tokenizers apply before splitting on whitespace.
std::u32string nfc(std::u32string_view text);

}  // namespace hlip::text::unicode
