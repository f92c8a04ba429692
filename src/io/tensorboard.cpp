#include "hlip/io/tensorboard.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "hlip/core/error.h"
#include "hlip/core/files.h"

static_assert(
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
    "TFRecord and protobuf fixed-width fields are little-endian; hlip copies bytes without swapping");

namespace hlip::io {
namespace {

constexpr const char* kFileVersion = "brain.Event:2";
constexpr uint64_t kDtString = 7;      // tensorboard.DataType DT_STRING (types.proto)
constexpr uint64_t kSessionStart = 1;  // tensorboard.SessionLog.SessionStatus START (event.proto)

// Protobuf wire types.
constexpr int kVarint = 0;
constexpr int kFixed64 = 1;
constexpr int kLengthDelimited = 2;
constexpr int kFixed32 = 5;

// One byte at a time through a 256-entry table: event files are kilobytes a minute, so the speed of
// slicing-by-8 would buy nothing.
constexpr std::array<uint32_t, 256> make_crc_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = make_crc_table();

std::string errno_text() {
  return std::strerror(errno);
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Event files hold proto3 `string` fields for tags; protobuf runtimes refuse a file whose strings are not
// UTF-8, so a bad tag would make TensorBoard drop the whole file. Checked here instead.
bool is_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<uint8_t>(s[i]);
    size_t extra = 0;
    uint32_t code = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      extra = 1;
      code = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      extra = 2;
      code = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      extra = 3;
      code = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      const auto next = static_cast<uint8_t>(s[i + k]);
      if ((next & 0xC0) != 0x80) return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    constexpr uint32_t kMinimum[] = {0, 0x80, 0x800, 0x10000};
    if (code < kMinimum[extra] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF) return false;
    i += extra + 1;
  }
  return true;
}

// --- Protobuf encoding: the few pieces Event and Summary need, in field-number order as protobuf
// serializes them, with proto3 defaults (0, "") left out except for members of a oneof.

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out += static_cast<char>((value & 0x7F) | 0x80);
    value >>= 7;
  }
  out += static_cast<char>(value);
}

void put_key(std::string& out, int field, int wire_type) {
  put_varint(out, (static_cast<uint64_t>(field) << 3) | static_cast<uint64_t>(wire_type));
}

void put_bytes(std::string& out, int field, std::string_view bytes) {
  put_key(out, field, kLengthDelimited);
  put_varint(out, bytes.size());
  out.append(bytes);
}

void put_double(std::string& out, int field, double value) {
  put_key(out, field, kFixed64);
  char raw[8];
  std::memcpy(raw, &value, 8);
  out.append(raw, 8);
}

void put_float(std::string& out, int field, float value) {
  put_key(out, field, kFixed32);
  char raw[4];
  std::memcpy(raw, &value, 4);
  out.append(raw, 4);
}

// Event{wall_time = 1 (double), step = 2 (int64)}; the caller appends the oneof `what`. Protobuf tests a
// double's presence on its bits, so -0.0 is written and +0.0 is not.
std::string event_prefix(double wall_time, int64_t step) {
  std::string event;
  uint64_t bits = 0;
  std::memcpy(&bits, &wall_time, 8);
  if (bits != 0) put_double(event, 1, wall_time);
  if (step != 0) {
    put_key(event, 2, kVarint);
    put_varint(event, static_cast<uint64_t>(step));  // int64: negatives as their 10-byte two's complement
  }
  return event;
}

// Event{..., summary = 5: Summary{value = 1: each of `values`}}.
std::string summary_event(double wall_time, int64_t step, const std::vector<std::string>& values) {
  std::string summary;
  for (const auto& value : values)
    put_bytes(summary, 1, value);
  std::string event = event_prefix(wall_time, step);
  put_bytes(event, 5, summary);
  return event;
}

void check_tag(const std::string& path, const std::string& tag) {
  if (tag.empty()) throw Error(fmt::format("{}: a TensorBoard tag must not be empty", path));
  if (!is_utf8(tag)) throw Error(fmt::format("{}: tag \"{}\" is not valid UTF-8", path, tag));
}

// Summary.Value{tag = 1, simple_value = 2}. simple_value is in a oneof, so 0.0 is written too.
std::string scalar_value(const std::string& tag, double value) {
  std::string out;
  put_bytes(out, 1, tag);
  put_float(out, 2, static_cast<float>(value));
  return out;
}

// --- Protobuf decoding for the reader.

// The fields of one message's bytes; errors name `where` (file and record offset).
class FieldReader {
 public:
  FieldReader(std::string_view bytes, const std::string& where) : bytes_(bytes), where_(where) {}

  bool next(int& field, int& wire_type) {
    if (pos_ >= bytes_.size()) return false;
    const uint64_t key = varint();
    field = static_cast<int>(key >> 3);
    wire_type = static_cast<int>(key & 7);
    if (field == 0) fail("field number 0");
    return true;
  }
  uint64_t varint() {
    uint64_t value = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) fail("truncated varint");
      const auto byte = static_cast<uint8_t>(bytes_[pos_++]);
      value |= static_cast<uint64_t>(byte & 0x7F) << shift;
      if (!(byte & 0x80)) return value;
    }
    fail("varint longer than 10 bytes");
  }
  std::string_view bytes() {
    const uint64_t size = varint();
    if (size > bytes_.size() - pos_) fail("length-delimited field runs past the end of its message");
    const std::string_view out = bytes_.substr(pos_, size);
    pos_ += size;
    return out;
  }
  template <typename T>
  T fixed() {
    if (sizeof(T) > bytes_.size() - pos_) fail("truncated fixed-width field");
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  void skip(int wire_type) {
    switch (wire_type) {
      case kVarint:
        varint();
        break;
      case kFixed64:
        fixed<uint64_t>();
        break;
      case kLengthDelimited:
        bytes();
        break;
      case kFixed32:
        fixed<uint32_t>();
        break;
      default:  // 3 and 4 are the deprecated groups, which no TensorBoard message uses
        fail(fmt::format("unsupported wire type {}", wire_type));
    }
  }
  // A known field with the wrong wire type is a malformed message, not an unknown field to skip.
  void expect(int field, int wire_type, int wanted) const {
    if (wire_type != wanted)
      fail(fmt::format("field {} has wire type {}, expected {}", field, wire_type, wanted));
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(fmt::format("{}: malformed Event: {}", where_, what));
  }

  std::string_view bytes_;
  size_t pos_ = 0;
  const std::string& where_;
};

// One Event's scalar values and whether it is a SessionLog START.
struct DecodedEvent {
  int64_t step = 0;
  bool session_start = false;
};

// Appends the scalar values of one Event's bytes to `out`.
DecodedEvent decode_event(std::string_view bytes, const std::string& where, std::vector<ScalarEvent>& out) {
  bool session_start = false;
  double wall_time = 0;
  int64_t step = 0;
  std::vector<std::pair<std::string, float>> values;
  FieldReader event(bytes, where);
  int field = 0, wire = 0;
  while (event.next(field, wire)) {
    if (field == 1) {
      event.expect(field, wire, kFixed64);
      wall_time = event.fixed<double>();
    } else if (field == 2) {
      event.expect(field, wire, kVarint);
      step = static_cast<int64_t>(event.varint());
    } else if (field == 5) {
      event.expect(field, wire, kLengthDelimited);
      FieldReader summary(event.bytes(), where);
      while (summary.next(field, wire)) {
        if (field != 1) {
          summary.skip(wire);
          continue;
        }
        summary.expect(field, wire, kLengthDelimited);
        FieldReader value(summary.bytes(), where);
        std::string tag;
        std::optional<float> simple;
        while (value.next(field, wire)) {
          if (field == 1) {
            value.expect(field, wire, kLengthDelimited);
            tag = std::string(value.bytes());
          } else if (field == 2) {
            value.expect(field, wire, kFixed32);
            simple = value.fixed<float>();
          } else {
            // Another member of the `value` oneof replaces simple_value, as protobuf's last-one-wins does.
            if (field == 3 || (field >= 4 && field <= 6) || field == 8) simple.reset();
            value.skip(wire);
          }
        }
        if (simple) values.emplace_back(std::move(tag), *simple);
      }
    } else if (field == 7) {
      event.expect(field, wire, kLengthDelimited);
      FieldReader session_log(event.bytes(), where);
      uint64_t status = 0;
      while (session_log.next(field, wire)) {
        if (field == 1) {
          session_log.expect(field, wire, kVarint);
          status = session_log.varint();
        } else {
          session_log.skip(wire);
        }
      }
      session_start = status == kSessionStart;
    } else {
      event.skip(wire);
    }
  }
  for (auto& [tag, value] : values)
    out.push_back({wall_time, step, std::move(tag), value});
  return {step, session_start};
}

uint64_t load_u64(const char* p) {
  uint64_t v = 0;
  std::memcpy(&v, p, 8);
  return v;
}

uint32_t load_u32(const char* p) {
  uint32_t v = 0;
  std::memcpy(&v, p, 4);
  return v;
}

std::string read_whole_file(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) throw Error(fmt::format("{}: cannot open event file: {}", path, errno_text()));
  std::string data;
  char buffer[1 << 16];
  size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, file)) > 0)
    data.append(buffer, n);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) throw Error(fmt::format("{}: cannot read event file", path));
  return data;
}

}  // namespace

bool ScalarEvent::operator==(const ScalarEvent& other) const {
  return wall_time == other.wall_time && step == other.step && tag == other.tag &&
         (value == other.value || (std::isnan(value) && std::isnan(other.value)));
}

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto* bytes = static_cast<const uint8_t*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i)
    crc = kCrcTable[(crc ^ bytes[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  const uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u;
}

EventWriter::EventWriter(const std::string& dir, const EventWriterOptions& options) {
  const double created = options.start_time.value_or(now_seconds());
  create_directories(dir);
  // TensorBoard's Python writer names its files "events.out.tfevents.%010d.%s.%s.%s" % (time, hostname, pid,
  // a per-process counter); the pid and counter keep writers opened in the same second apart.
  static std::atomic<int> counter{0};
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  path_ = (std::filesystem::path(dir) / fmt::format("events.out.tfevents.{:010d}.{}.{}.{}",
                                                    static_cast<int64_t>(std::floor(created)), host,
                                                    ::getpid(), counter++))
              .string();
  // O_EXCL: never append to, or truncate, another writer's file.
  const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(fmt::format("{}: cannot create event file: {}", path_, errno_text()));
  file_ = ::fdopen(fd, "wb");
  if (file_ == nullptr) {
    const std::string reason = errno_text();
    ::close(fd);
    throw Error(fmt::format("{}: cannot open event file: {}", path_, reason));
  }
  std::string event = event_prefix(created, 0);
  put_bytes(event, 3, kFileVersion);  // Event.file_version
  write_record(event);
  if (options.purge_step) {
    // Event{..., session_log = 7: SessionLog{status = 1: START}}
    std::string session_log;
    put_key(session_log, 1, kVarint);
    put_varint(session_log, kSessionStart);
    std::string start = event_prefix(created, *options.purge_step);
    put_bytes(start, 7, session_log);
    write_record(start);
  }
}

EventWriter::~EventWriter() {
  try {
    close();
  } catch (const Error&) {
    // A destructor must not throw; close() reports the same failure to callers who ask.
  }
}

void EventWriter::write_record(std::string_view event) {
  if (file_ == nullptr) throw Error(fmt::format("{}: the event file is closed", path_));
  char header[12];
  const uint64_t length = event.size();
  std::memcpy(header, &length, 8);
  const uint32_t length_crc = masked_crc32c(header, 8);
  std::memcpy(header + 8, &length_crc, 4);
  const uint32_t data_crc = masked_crc32c(event.data(), event.size());
  if (std::fwrite(header, 1, sizeof header, file_) != sizeof header ||
      std::fwrite(event.data(), 1, event.size(), file_) != event.size() ||
      std::fwrite(&data_crc, 1, 4, file_) != 4) {
    throw Error(fmt::format("{}: write failed: {}", path_, errno_text()));
  }
}

void EventWriter::add_scalar(const std::string& tag, double value, int64_t step,
                             std::optional<double> wall_time) {
  check_tag(path_, tag);
  write_record(summary_event(wall_time.value_or(now_seconds()), step, {scalar_value(tag, value)}));
}

void EventWriter::add_scalars(const std::map<std::string, double>& values, int64_t step,
                              std::optional<double> wall_time) {
  if (values.empty()) throw Error(fmt::format("{}: add_scalars needs at least one value", path_));
  std::vector<std::string> encoded;
  for (const auto& [tag, value] : values) {
    check_tag(path_, tag);
    encoded.push_back(scalar_value(tag, value));
  }
  write_record(summary_event(wall_time.value_or(now_seconds()), step, encoded));
}

void EventWriter::add_text(const std::string& tag, const std::string& text, int64_t step,
                           std::optional<double> wall_time) {
  check_tag(path_, tag);
  if (!is_utf8(text)) throw Error(fmt::format("{}: the text of tag \"{}\" is not valid UTF-8", path_, tag));
  // TensorProto{dtype = 1: DT_STRING, tensor_shape = 2: TensorShapeProto{dim = 2: Dim{size = 1: 1}},
  //             string_val = 8: text}
  std::string dim;
  put_key(dim, 1, kVarint);
  put_varint(dim, 1);
  std::string shape;
  put_bytes(shape, 2, dim);
  std::string tensor;
  put_key(tensor, 1, kVarint);
  put_varint(tensor, kDtString);
  put_bytes(tensor, 2, shape);
  put_bytes(tensor, 8, text);  // a repeated field: written even when empty
  // SummaryMetadata{plugin_data = 1: PluginData{plugin_name = 1: "text"}}. torch.utils.tensorboard also sets
  // content = TextPluginData{version: 0}, whose serialization is empty and so is left out.
  std::string plugin;
  put_bytes(plugin, 1, "text");
  std::string metadata;
  put_bytes(metadata, 1, plugin);
  // Summary.Value{tag = 1, tensor = 8, metadata = 9}
  std::string value;
  put_bytes(value, 1, tag);
  put_bytes(value, 8, tensor);
  put_bytes(value, 9, metadata);
  write_record(summary_event(wall_time.value_or(now_seconds()), step, {value}));
}

void EventWriter::flush() {
  if (file_ == nullptr) throw Error(fmt::format("{}: the event file is closed", path_));
  if (std::fflush(file_) != 0) throw Error(fmt::format("{}: write failed: {}", path_, errno_text()));
  if (::fsync(::fileno(file_)) != 0) throw Error(fmt::format("{}: fsync failed: {}", path_, errno_text()));
}

void EventWriter::close() {
  if (file_ == nullptr) return;
  std::FILE* file = file_;
  std::string failure;
  if (std::fflush(file) != 0 || ::fsync(::fileno(file)) != 0) failure = errno_text();
  file_ = nullptr;
  if (std::fclose(file) != 0 && failure.empty()) failure = errno_text();
  if (!failure.empty()) throw Error(fmt::format("{}: closing failed: {}", path_, failure));
}

namespace {

// Reads the file's records in order, appending their scalars to `out`; a SessionLog START at step S first
// drops the entries of `out` with step S or later.
void read_events_into(const std::string& path, std::vector<ScalarEvent>& out) {
  const std::string data = read_whole_file(path);
  size_t pos = 0;
  // A record that the file ends inside is one a writer has not finished: stop there, as TensorBoard does.
  while (data.size() - pos >= 12) {
    const std::string where = fmt::format("{}: record at byte {}", path, pos);
    const uint64_t length = load_u64(data.data() + pos);
    if (load_u32(data.data() + pos + 8) != masked_crc32c(data.data() + pos, 8)) {
      throw Error(where + ": corrupt record: the CRC of its length does not match");
    }
    if (length > data.size() - pos - 12 || data.size() - pos - 12 - length < 4) break;
    const std::string_view event(data.data() + pos + 12, length);
    if (load_u32(data.data() + pos + 12 + length) != masked_crc32c(event.data(), event.size())) {
      throw Error(where + ": corrupt record: the CRC of its data does not match");
    }
    std::vector<ScalarEvent> scalars;
    const DecodedEvent decoded = decode_event(event, where, scalars);
    if (decoded.session_start) {
      out.erase(std::remove_if(out.begin(), out.end(),
                               [&](const ScalarEvent& e) { return e.step >= decoded.step; }),
                out.end());
    }
    out.insert(out.end(), std::make_move_iterator(scalars.begin()), std::make_move_iterator(scalars.end()));
    pos += 16 + length;
  }
}

}  // namespace

std::vector<ScalarEvent> read_scalar_events(const std::string& path) {
  std::vector<ScalarEvent> out;
  read_events_into(path, out);
  return out;
}

std::vector<ScalarEvent> read_run_scalars(const std::string& dir) {
  std::error_code error;
  std::vector<std::string> files;
  for (std::filesystem::directory_iterator it(dir, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    std::error_code ignored;  // a file that vanished meanwhile is simply not read
    if (name.rfind("events.out.tfevents.", 0) == 0 && it->is_regular_file(ignored)) {
      files.push_back(it->path().string());
    }
  }
  if (error) throw Error(fmt::format("{}: cannot list the folder: {}", dir, error.message()));
  std::sort(files.begin(), files.end());
  std::vector<ScalarEvent> out;
  for (const auto& file : files)
    read_events_into(file, out);
  return out;
}

}  // namespace hlip::io
