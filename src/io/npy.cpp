#include "hlip/io/npy.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <utility>

#include "hlip/core/error.h"
#include "hlip/core/files.h"

namespace hlip::io {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

struct NpyType {
  const char* descr;  // without the byte-order character
  at::ScalarType dtype;
};

// uint16 has no LibTorch 1.13 dtype: it is read into int32 (values kept) and cannot be written.
constexpr NpyType kTypes[] = {
    {"b1", at::kBool}, {"u1", at::kByte}, {"i1", at::kChar}, {"i2", at::kShort}, {"u2", at::kInt},
    {"i4", at::kInt},  {"i8", at::kLong}, {"f2", at::kHalf}, {"f4", at::kFloat}, {"f8", at::kDouble},
};

int64_t item_size(const std::string& type) {
  return type == "b1" ? 1 : std::stoll(type.substr(1));
}

// A parser for the header's Python dict literal, limited to what numpy writes: string keys, and values
// that are strings, True/False, or tuples of non-negative integers.
class DictParser {
 public:
  DictParser(const std::string& text, const std::string& path) : text_(text), path_(path) {}

  struct Value {
    enum class Kind { kString, kBool, kTuple, kOther } kind = Kind::kOther;
    std::string text;
    std::string literal;  // the value as written in the header
    bool flag = false;
    std::vector<int64_t> tuple;
  };

  std::map<std::string, Value> parse() {
    std::map<std::string, Value> out;
    expect('{');
    skip_space();
    while (peek() != '}') {
      const std::string key = parse_string("key");
      expect(':');
      Value value = parse_value(key);
      if (!out.emplace(key, std::move(value)).second) fail(fmt::format("key '{}' appears twice", key));
      skip_space();
      if (peek() == ',') {
        ++pos_;
        skip_space();
      } else if (peek() != '}') {
        fail(fmt::format("expected ',' or '}}' after '{}' at offset {}", key, pos_));
      }
    }
    ++pos_;
    skip_space();
    if (pos_ != text_.size()) fail(fmt::format("unexpected text after the dict at offset {}", pos_));
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("{}: header: {} (header is \"{}\")", path_, what, shorten(text_)));
  }

  static std::string shorten(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 120))
      out += (c >= 32 && c < 127) ? c : '?';
    while (!out.empty() && out.back() == ' ')
      out.pop_back();
    return s.size() > 120 ? out + "..." : out;
  }

  char peek() const { return pos_ < text_.size() ? text_[pos_] : '\0'; }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\n' || text_[pos_] == '\t'))
      ++pos_;
  }

  void expect(char c) {
    skip_space();
    if (peek() != c) fail(fmt::format("expected '{}' at offset {}", c, pos_));
    ++pos_;
  }

  std::string parse_string(const char* what) {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail(fmt::format("expected a quoted {} at offset {}", what, pos_));
    const size_t end = text_.find(quote, pos_ + 1);
    if (end == std::string::npos) fail(fmt::format("unterminated string at offset {}", pos_));
    std::string s = text_.substr(pos_ + 1, end - pos_ - 1);
    pos_ = end + 1;
    return s;
  }

  Value parse_value(const std::string& key) {
    skip_space();
    const size_t start_of_value = pos_;
    Value v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = Value::Kind::kString;
      v.text = parse_string("value");
    } else if (text_.compare(pos_, 4, "True") == 0) {
      v.kind = Value::Kind::kBool;
      v.flag = true;
      pos_ += 4;
    } else if (text_.compare(pos_, 5, "False") == 0) {
      v.kind = Value::Kind::kBool;
      pos_ += 5;
    } else if (c == '(') {
      v.kind = Value::Kind::kTuple;
      ++pos_;
      skip_space();
      while (peek() != ')') {
        const size_t start = pos_;
        int64_t n = 0;
        while (pos_ < text_.size() && text_[pos_] >= '0' && text_[pos_] <= '9') {
          if (__builtin_mul_overflow(n, int64_t{10}, &n) ||
              __builtin_add_overflow(n, text_[pos_] - '0', &n)) {
            fail(fmt::format("{}: entry {} overflows 64 bits", key, v.tuple.size()));
          }
          ++pos_;
        }
        // Python 2 era files write 3L for longs.
        if (pos_ < text_.size() && text_[pos_] == 'L') ++pos_;
        if (pos_ == start) fail(fmt::format("{}: expected a non-negative integer at offset {}", key, pos_));
        v.tuple.push_back(n);
        skip_space();
        if (peek() == ',') {
          ++pos_;
          skip_space();
        } else if (peek() != ')') {
          fail(fmt::format("{}: expected ',' or ')' at offset {}", key, pos_));
        }
      }
      ++pos_;
    } else {
      // Structured dtypes ([('x', '<f4'), ...]) and anything else numpy may write: recognised as present.
      const size_t start = pos_;
      int depth = 0;
      while (pos_ < text_.size()) {
        const char d = text_[pos_];
        if (d == '[' || d == '(' || d == '{') ++depth;
        if (d == ']' || d == ')' || d == '}') {
          if (depth == 0) break;
          --depth;
        }
        if (d == ',' && depth == 0) break;
        ++pos_;
      }
      v.text = text_.substr(start, pos_ - start);
    }
    v.literal = text_.substr(start_of_value, pos_ - start_of_value);
    return v;
  }

  const std::string& text_;
  const std::string& path_;
  size_t pos_ = 0;
};

std::string shape_literal(at::IntArrayRef sizes) {
  if (sizes.size() == 1) return fmt::format("({},)", sizes[0]);
  std::string s = "(";
  for (size_t i = 0; i < sizes.size(); ++i)
    s += fmt::format("{}{}", i ? ", " : "", sizes[i]);
  return s + ")";
}

}  // namespace

NpyHeader decode_npy_header(const void* bytes, size_t size, const std::string& path) {
  const auto* b = static_cast<const unsigned char*>(bytes);
  if (size < kMagicSize + 2 || std::memcmp(b, kMagic, kMagicSize) != 0) {
    throw Error(fmt::format("{}: not a .npy file: the magic string \\x93NUMPY is missing", path));
  }
  NpyHeader header;
  header.major_version = b[6];
  if (header.major_version < 1 || header.major_version > 3) {
    throw Error(fmt::format("{}: format version {}.{} is not supported (1.0, 2.0, 3.0)", path, b[6], b[7]));
  }
  const size_t length_bytes = header.major_version == 1 ? 2 : 4;
  const size_t prefix = kMagicSize + 2 + length_bytes;
  if (size < prefix) throw Error(fmt::format("{}: truncated .npy header: {} bytes", path, size));
  size_t header_len = 0;
  for (size_t i = 0; i < length_bytes; ++i)
    header_len |= static_cast<size_t>(b[8 + i]) << (8 * i);
  if (size < prefix + header_len) {
    throw Error(fmt::format("{}: truncated .npy header: header_len is {}, only {} bytes follow", path,
                            header_len, size - prefix));
  }
  header.data_offset = prefix + header_len;
  const std::string text(reinterpret_cast<const char*>(b + prefix), header_len);
  const auto dict = DictParser(text, path).parse();

  using Kind = DictParser::Value::Kind;
  auto field = [&](const char* key, Kind kind, const char* expected) -> const DictParser::Value& {
    auto it = dict.find(key);
    if (it == dict.end()) throw Error(fmt::format("{}: header: key '{}' is missing", path, key));
    if (it->second.kind != kind) {
      throw Error(fmt::format("{}: header: {} is {}, expected {}", path, key, it->second.literal, expected));
    }
    return it->second;
  };
  header.descr = field("descr", Kind::kString, "a simple dtype string like '<f4'").text;
  header.fortran_order = field("fortran_order", Kind::kBool, "True or False").flag;
  header.shape = field("shape", Kind::kTuple, "a tuple of integers").tuple;
  for (const auto& entry : dict) {
    if (entry.first != "descr" && entry.first != "fortran_order" && entry.first != "shape") {
      throw Error(fmt::format("{}: header: unexpected key '{}'", path, entry.first));
    }
  }

  const std::string& descr = header.descr;
  if (descr.size() < 3)
    throw Error(fmt::format("{}: header: descr '{}' is not a dtype hlip reads", path, descr));
  const char order = descr[0];
  if (order == '>') {
    throw Error(
        fmt::format("{}: header: descr '{}' is big-endian; hlip reads little-endian arrays", path, descr));
  }
  const std::string type = descr.substr(1);
  const NpyType* match = nullptr;
  for (const auto& t : kTypes) {
    if (type == t.descr) match = &t;
  }
  if ((order != '<' && order != '|' && order != '=') || match == nullptr) {
    throw Error(fmt::format(
        "{}: header: descr '{}' is not supported (bool, u1, i1, i2, u2, i4, i8, f2, f4, f8)", path, descr));
  }
  header.dtype = match->dtype;
  int64_t bytes_total = item_size(type);
  for (int64_t extent : header.shape) {
    if (__builtin_mul_overflow(bytes_total, extent, &bytes_total)) {
      throw Error(
          fmt::format("{}: header: shape {} overflows 64-bit sizes", path, shape_literal(header.shape)));
    }
  }
  return header;
}

NpyHeader read_npy_header(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  const auto file_bytes = static_cast<size_t>(std::max<std::streamoff>(in.tellg(), 0));
  in.seekg(0);
  // Version 1 headers are at most 64 KiB; 2.0/3.0 headers may be longer, so read what the length says (but
  // never more than the file holds: a 12-byte file claiming a 4 GiB header must not allocate it).
  std::vector<char> bytes(kMagicSize + 2 + 4);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  bytes.resize(static_cast<size_t>(in.gcount()));
  if (bytes.size() >= kMagicSize + 2 && std::memcmp(bytes.data(), kMagic, kMagicSize) == 0) {
    const unsigned major = static_cast<unsigned char>(bytes[6]);
    const size_t length_bytes = major == 1 ? 2 : 4;
    if (bytes.size() >= kMagicSize + 2 + length_bytes) {
      size_t header_len = 0;
      for (size_t i = 0; i < length_bytes; ++i) {
        header_len |= static_cast<size_t>(static_cast<unsigned char>(bytes[8 + i])) << (8 * i);
      }
      const size_t want = std::min({kMagicSize + 2 + length_bytes + header_len, size_t{1} << 26, file_bytes});
      if (want > bytes.size()) {
        const size_t have = bytes.size();
        bytes.resize(want);
        in.read(bytes.data() + have, static_cast<std::streamsize>(want - have));
        bytes.resize(have + static_cast<size_t>(in.gcount()));
      }
    }
  }
  return decode_npy_header(bytes.data(), bytes.size(), path);
}

at::Tensor read_npy(const std::string& path) {
  const NpyHeader header = read_npy_header(path);
  std::vector<int64_t> sizes = header.shape;
  if (header.fortran_order) std::reverse(sizes.begin(), sizes.end());
  const bool widen_uint16 = header.descr.substr(1) == "u2";
  const at::ScalarType file_dtype = widen_uint16 ? at::kShort : header.dtype;
  int64_t data_bytes = static_cast<int64_t>(c10::elementSize(file_dtype));
  for (int64_t extent : sizes)
    data_bytes *= extent;  // decode_npy_header checked that this does not overflow

  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  // Checked before allocating, so a short file claiming a huge shape fails with this message, not an
  // allocation failure.
  const int64_t available =
      std::max<int64_t>(static_cast<int64_t>(in.tellg()) - static_cast<int64_t>(header.data_offset), 0);
  if (available < data_bytes) {
    throw Error(fmt::format("{}: truncated: shape {} of {} needs {} bytes of data, the file has {}", path,
                            shape_literal(header.shape), header.descr, data_bytes, available));
  }
  at::Tensor tensor = at::empty(sizes, at::dtype(file_dtype));
  in.seekg(static_cast<std::streamoff>(header.data_offset));
  in.read(static_cast<char*>(tensor.data_ptr()), data_bytes);
  const int64_t got = in.gcount();
  if (got != data_bytes) {
    throw Error(fmt::format("{}: truncated: shape {} of {} needs {} bytes of data, the file has {}", path,
                            shape_literal(header.shape), header.descr, data_bytes, got));
  }
  if (widen_uint16) tensor = tensor.to(at::kInt).bitwise_and_(0xFFFF);
  if (header.fortran_order) {
    std::vector<int64_t> reverse(sizes.size());
    for (size_t i = 0; i < reverse.size(); ++i)
      reverse[i] = static_cast<int64_t>(reverse.size() - 1 - i);
    tensor = tensor.permute(reverse);
  }
  return tensor;
}

void write_npy(const std::string& path, const at::Tensor& tensor) {
  const char* descr = nullptr;
  switch (tensor.scalar_type()) {
    case at::kBool:
      descr = "|b1";
      break;
    case at::kByte:
      descr = "|u1";
      break;
    case at::kChar:
      descr = "|i1";
      break;
    case at::kShort:
      descr = "<i2";
      break;
    case at::kInt:
      descr = "<i4";
      break;
    case at::kLong:
      descr = "<i8";
      break;
    case at::kHalf:
      descr = "<f2";
      break;
    case at::kFloat:
      descr = "<f4";
      break;
    case at::kDouble:
      descr = "<f8";
      break;
    default:
      throw Error(
          fmt::format("{}: cannot write {} tensors as .npy", path, c10::toString(tensor.scalar_type())));
  }
  const at::Tensor data = tensor.device().is_cpu() ? tensor.contiguous() : tensor.cpu().contiguous();
  std::string dict = fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': {}, }}", descr,
                                 shape_literal(data.sizes()));
  // numpy's layout, byte for byte: spare spaces so the first axis can grow in place (21 digits), then
  // spaces and a newline up to a 64-byte boundary (a full 64 when already aligned).
  if (data.dim() > 0) dict += std::string(21 - std::to_string(data.size(0)).size(), ' ');
  int major = 1;
  auto padded = [&](size_t prefix) {
    const size_t unpadded = prefix + dict.size() + 1;
    return dict + std::string(64 - unpadded % 64, ' ') + "\n";
  };
  std::string text = padded(kMagicSize + 2 + 2);
  if (text.size() > 65535) {
    major = 2;
    text = padded(kMagicSize + 2 + 4);
  }
  std::string head(kMagic, kMagicSize);
  head += static_cast<char>(major);
  head += '\0';
  const size_t n = text.size();
  head += static_cast<char>(n & 0xFF);
  head += static_cast<char>((n >> 8) & 0xFF);
  if (major == 2) {
    head += static_cast<char>((n >> 16) & 0xFF);
    head += static_cast<char>((n >> 24) & 0xFF);
  }
  head += text;

  write_file_atomic(path, {head, std::string_view(static_cast<const char*>(data.data_ptr()),
                                                  static_cast<size_t>(data.numel() * data.element_size()))});
}

Volume read_npy_volume(const std::string& path, int64_t volume, VoxelValues values) {
  at::Tensor array = read_npy(path);
  if (array.dim() == 4) {
    if (volume < 0 || volume >= array.size(3)) {
      throw Error(fmt::format("{}: volume {} is out of range: shape[3] is {}", path, volume, array.size(3)));
    }
    array = array.select(3, volume);
  } else if (array.dim() == 3) {
    if (volume != 0) throw Error(fmt::format("{}: volume {} is out of range: the array is 3D", path, volume));
  } else {
    throw Error(fmt::format("{}: shape {} is not a 3D or 4D scan", path, shape_literal(array.sizes())));
  }
  const at::ScalarType stored = array.scalar_type();
  const bool exact_as_is = stored == at::kFloat || stored == at::kByte || stored == at::kShort;
  if (values == VoxelValues::kScaledFloat32 || (values == VoxelValues::kCompact && !exact_as_is)) {
    array = array.to(at::kFloat);
  }
  Volume vol = volume_from_tensor(std::move(array), {1, 1, 1}, path);
  vol.stored_dtype = stored;
  return vol;
}

}  // namespace hlip::io
