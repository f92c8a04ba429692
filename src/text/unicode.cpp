#include "unicode.h"

#include <fmt/format.h>
#include <utf8proc.h>

#include <cstdlib>
#include <memory>

#include "hlip/core/error.h"

namespace hlip::text::unicode {
namespace {

[[noreturn]] void throw_invalid_utf8(std::string_view context, std::size_t offset, unsigned char byte) {
  throw Error(fmt::format("{}: invalid UTF-8 at byte offset {} (byte 0x{:02x})", context, offset, byte));
}

utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

int combining_class(char32_t c) {
  return utf8proc_get_property(static_cast<utf8proc_int32_t>(c))->combining_class;
}

// Canonical ordering: within each run of non-zero combining classes, sort stably by class.
void reorder_marks(std::u32string& text, std::size_t from) {
  for (std::size_t i = from + 1; i < text.size(); ++i) {
    const int cc = combining_class(text[i]);
    if (cc == 0) continue;
    std::size_t j = i;
    const char32_t c = text[i];
    while (j > from && combining_class(text[j - 1]) > cc) {
      text[j] = text[j - 1];
      --j;
    }
    text[j] = c;
  }
}

}  // namespace

void decode_utf8(std::string_view text, std::u32string& out, std::string_view context) {
  out.clear();
  out.reserve(text.size());
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char lead = bytes[i];
    if (lead < 0x80) {
      out.push_back(lead);
      ++i;
      continue;
    }
    std::size_t length = 0;
    char32_t c = 0;
    char32_t smallest = 0;
    if ((lead & 0xE0) == 0xC0) {
      length = 2, c = lead & 0x1F, smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
      length = 3, c = lead & 0x0F, smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
      length = 4, c = lead & 0x07, smallest = 0x10000;
    } else {
      throw_invalid_utf8(context, i, lead);
    }
    if (i + length > n) throw_invalid_utf8(context, i, lead);
    for (std::size_t k = 1; k < length; ++k) {
      const unsigned char next = bytes[i + k];
      if ((next & 0xC0) != 0x80) throw_invalid_utf8(context, i, lead);
      c = (c << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if (c < smallest || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) throw_invalid_utf8(context, i, lead);
    out.push_back(c);
    i += length;
  }
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

void append_utf8(std::u32string_view text, std::string& out) {
  for (char32_t c : text)
    append_utf8(c, out);
}

std::string to_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  append_utf8(text, out);
  return out;
}

bool is_whitespace(char32_t c) {
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r') return true;
  if (c < 0x80) return c == 0x0B || c == 0x0C;
  return c == 0x85 || c == 0x2028 || c == 0x2029 || category(c) == UTF8PROC_CATEGORY_ZS;
}

bool is_removed_by_cleaning(char32_t c, HfFlavor flavor) {
  if (c == 0 || c == 0xFFFD) return true;
  if (c == '\t' || c == '\n' || c == '\r') return false;
  if (c >= 0x20 && c < 0x7F) return false;
  switch (category(c)) {
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CO:
    case UTF8PROC_CATEGORY_CS:
      return true;
    case UTF8PROC_CATEGORY_CN:
      // Python's unicodedata calls unassigned code points "Cn", a control category; Rust keeps them.
      return flavor == HfFlavor::slow;
    default:
      return false;
  }
}

bool is_punctuation(char32_t c) {
  if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126)) {
    return true;
  }
  if (c < 0x80) return false;
  const utf8proc_category_t cat = category(c);
  return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

bool is_chinese_char(char32_t c, HfFlavor flavor) {
  // The slow tokenizer's Extension E range starts at U+2B820, the Rust library's at U+2B920.
  const char32_t extension_e_begin = flavor == HfFlavor::slow ? 0x2B820 : 0x2B920;
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) ||
         (c >= extension_e_begin && c <= 0x2CEAF) || (c >= 0xF900 && c <= 0xFAFF) ||
         (c >= 0x2F800 && c <= 0x2FA1F);
}

void append_lowercase(std::u32string_view text, std::u32string& out) {
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    } else if (c == 0x130) {
      // The one unconditional multi-character lowercase mapping (SpecialCasing.txt): İ -> i + combining dot.
      out.push_back('i');
      out.push_back(0x307);
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
}

void append_without_accents(std::u32string_view text, std::u32string& out) {
  const std::size_t from = out.size();
  bool has_marks = false;
  utf8proc_int32_t buffer[32];
  for (char32_t c : text) {
    if (c < 0x80) {
      out.push_back(c);
      continue;
    }
    int boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), buffer, 32,
                                                       UTF8PROC_DECOMPOSE, &boundclass);
    if (n < 0 || n > 32) throw Error(fmt::format("cannot decompose U+{:04X}", static_cast<uint32_t>(c)));
    for (utf8proc_ssize_t k = 0; k < n; ++k)
      out.push_back(static_cast<char32_t>(buffer[k]));
    has_marks = true;
  }
  if (!has_marks) return;
  reorder_marks(out, from);
  std::size_t kept = from;
  for (std::size_t i = from; i < out.size(); ++i) {
    if (category(out[i]) != UTF8PROC_CATEGORY_MN) out[kept++] = out[i];
  }
  out.resize(kept);
}

std::u32string nfc(std::u32string_view text) {
  const std::string utf8 = to_utf8(text);
  utf8proc_uint8_t* composed = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                                          static_cast<utf8proc_ssize_t>(utf8.size()), &composed,
                                          static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) throw Error(fmt::format("NFC normalisation failed: {}", utf8proc_errmsg(n)));
  const std::unique_ptr<utf8proc_uint8_t, decltype(&std::free)> owner(composed, &std::free);
  std::u32string out;
  decode_utf8(std::string_view(reinterpret_cast<const char*>(composed), static_cast<std::size_t>(n)), out,
              "NFC");
  return out;
}

}  // namespace hlip::text::unicode
