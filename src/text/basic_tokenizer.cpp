#include "hlip/text/basic_tokenizer.h"

#include <algorithm>

#include "unicode.h"

namespace hlip::text {
namespace {

// Appends `word` to out.text and its pieces to out.spans: each punctuation character alone, the runs
// between them together.
void append_punctuation_split(std::u32string_view word, Words& out) {
  const std::size_t base = out.text.size();
  out.text.append(word);
  std::size_t start = base;
  const std::size_t end = out.text.size();
  for (std::size_t i = base; i < end; ++i) {
    if (!unicode::is_punctuation(out.text[i])) continue;
    if (start < i) out.spans.emplace_back(start, i);
    out.spans.emplace_back(i, i + 1);
    start = i + 1;
  }
  if (start < end) out.spans.emplace_back(start, end);
}

std::vector<std::string> to_strings(const Words& words) {
  std::vector<std::string> out;
  out.reserve(words.size());
  for (std::size_t i = 0; i < words.size(); ++i)
    out.push_back(unicode::to_utf8(words[i]));
  return out;
}

}  // namespace

BasicTokenizer::BasicTokenizer(BasicTokenizerOptions options) : options_(std::move(options)) {
  for (const std::string& word : options_.never_split) {
    std::u32string decoded;
    unicode::decode_utf8(word, decoded, "never_split \"" + word + "\"");
    never_split_.push_back(std::move(decoded));
  }
}

bool BasicTokenizer::is_never_split(std::u32string_view word) const {
  return std::any_of(never_split_.begin(), never_split_.end(),
                     [&](const std::u32string& kept) { return std::u32string_view(kept) == word; });
}

void BasicTokenizer::split(std::u32string_view text, Words& out) const {
  std::u32string cleaned;
  cleaned.reserve(text.size() + 8);
  for (char32_t c : text) {
    if (options_.clean_text) {
      if (unicode::is_removed_by_cleaning(c, options_.flavor)) continue;
      if (unicode::is_whitespace(c)) c = ' ';
    }
    if (options_.tokenize_chinese_chars && unicode::is_chinese_char(c, options_.flavor)) {
      cleaned.push_back(' ');
      cleaned.push_back(c);
      cleaned.push_back(' ');
    } else {
      cleaned.push_back(c);
    }
  }
  // Newer slow tokenizers compose to NFC before splitting; it only matters when accents are kept.
  if (options_.flavor == HfFlavor::slow) cleaned = unicode::nfc(cleaned);

  const bool strip_accents = options_.strips_accents();
  std::u32string lowered;
  std::u32string stripped;
  unicode::for_each_whitespace_separated(cleaned, [&](std::u32string_view word) {
    if (is_never_split(word)) {
      out.spans.emplace_back(out.text.size(), out.text.size() + word.size());
      out.text.append(word);
      return;
    }
    if (options_.do_lower_case) {
      lowered.clear();
      unicode::append_lowercase(word, lowered);
      word = lowered;
    }
    if (strip_accents) {
      stripped.clear();
      unicode::append_without_accents(word, stripped);
      word = stripped;
    }
    append_punctuation_split(word, out);
  });
}

std::vector<std::string> BasicTokenizer::tokenize(std::string_view text) const {
  std::u32string decoded;
  unicode::decode_utf8(text, decoded, "text");
  Words words;
  split(decoded, words);
  return to_strings(words);
}

std::string bert_normalize(std::string_view text, const BertNormalizerOptions& options) {
  std::u32string decoded;
  unicode::decode_utf8(text, decoded, "text");
  std::u32string out;
  out.reserve(decoded.size());
  for (char32_t c : decoded) {
    if (options.clean_text) {
      if (unicode::is_removed_by_cleaning(c, options.flavor)) continue;
      if (unicode::is_whitespace(c)) c = ' ';
    }
    if (options.handle_chinese_chars && unicode::is_chinese_char(c, options.flavor)) {
      out.push_back(' ');
      out.push_back(c);
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  if (options.strip_accents.value_or(options.lowercase)) {
    std::u32string stripped;
    unicode::append_without_accents(out, stripped);
    out.swap(stripped);
  }
  if (options.lowercase) {
    std::u32string lowered;
    unicode::append_lowercase(out, lowered);
    out.swap(lowered);
  }
  return unicode::to_utf8(out);
}

std::vector<std::string> bert_pre_tokenize(std::string_view text) {
  std::u32string decoded;
  unicode::decode_utf8(text, decoded, "text");
  Words words;
  unicode::for_each_whitespace_separated(
      decoded, [&](std::u32string_view word) { append_punctuation_split(word, words); });
  return to_strings(words);
}

}  // namespace hlip::text
