// TensorBoard event files: CRC32C against the RFC 3720 vectors, byte-exact equality with events serialized by
// Google's protobuf runtime (tests/ref/make_tensorboard_ref.py), the reader on good, damaged and cut-short
// files, run folders with resumed runs, file naming and errors, and (where python3-protobuf is installed)
// protobuf parsing what hlip writes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/io/tensorboard.h"
#include "temp_dir.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;
using hlip::test::error_message;
using hlip::test::read_bytes;
using hlip::test::TempDir;
using hlip::test::write_bytes;
using nlohmann::json;

const std::string kDir = std::string(HLIP_TEST_DATA_DIR) + "/tensorboard";
const std::string kScript = std::string(HLIP_TEST_REF_DIR) + "/make_tensorboard_ref.py";

uint32_t crc_of(const std::string& s) {
  return crc32c(s.data(), s.size());
}

TEST(Crc32c, Rfc3720Vectors) {
  EXPECT_EQ(crc_of("123456789"), 0xE3069283u);
  EXPECT_EQ(crc_of(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc_of(std::string(32, '\xFF')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending += static_cast<char>(i);
    descending += static_cast<char>(31 - i);
  }
  EXPECT_EQ(crc_of(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc_of(descending), 0x113FDB5Cu);
  EXPECT_EQ(crc_of(""), 0u);
}

TEST(Crc32c, ContinuesOverPieces) {
  const std::string digits = "123456789";
  for (size_t split = 0; split <= digits.size(); ++split) {
    EXPECT_EQ(crc32c(digits.data() + split, digits.size() - split, crc32c(digits.data(), split)),
              0xE3069283u);
  }
}

TEST(Crc32c, MaskedAsTfRecordDoes) {
  // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xA282EAD8 modulo 2^32, worked out in Python.
  EXPECT_EQ(masked_crc32c("123456789", 9), 0xC78AB0E5u);
}

json load_ops() {
  std::ifstream in(kDir + "/ops.json");
  if (!in) throw std::runtime_error("cannot open " + kDir + "/ops.json");
  return json::parse(in);
}

double as_number(const json& value) {
  if (value.is_number()) return value.get<double>();
  const auto s = value.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return s == "inf" ? std::numeric_limits<double>::infinity() : -std::numeric_limits<double>::infinity();
}

// Replays one file of ops.json on a writer in `dir`; returns the file's path.
std::string replay(const json& spec, const std::string& dir) {
  EventWriterOptions options;
  options.start_time = spec["start_time"].get<double>();
  if (spec.contains("purge_step")) options.purge_step = spec["purge_step"].get<int64_t>();
  EventWriter writer(dir, options);
  for (const auto& op : spec["ops"]) {
    const auto step = op["step"].get<int64_t>();
    const auto wall_time = op["wall_time"].get<double>();
    const auto kind = op["op"].get<std::string>();
    if (kind == "scalar") {
      writer.add_scalar(op["tag"], as_number(op["value"]), step, wall_time);
    } else if (kind == "scalars") {
      std::map<std::string, double> values;
      for (const auto& [tag, value] : op["values"].items())
        values[tag] = as_number(value);
      writer.add_scalars(values, step, wall_time);
    } else {
      writer.add_text(op["tag"], op["text"], step, wall_time);
    }
  }
  writer.close();
  return writer.path();
}

TEST(EventWriter, BytesEqualProtobufReference) {
  const json doc = load_ops();
  ASSERT_EQ(doc["files"].size(), 2u);
  for (const auto& spec : doc["files"]) {
    const auto name = spec["name"].get<std::string>();
    TempDir dir;
    const auto got = read_bytes(replay(spec, dir.file("tb")));
    const auto want = read_bytes(kDir + "/" + name);
    ASSERT_FALSE(want.empty()) << name;
    const auto mismatch = std::mismatch(got.begin(), got.end(), want.begin(), want.end());
    EXPECT_TRUE(mismatch.first == got.end() && mismatch.second == want.end())
        << name << ": first difference at byte " << (mismatch.first - got.begin()) << " of " << got.size()
        << " (reference " << want.size() << ")";
  }
}

// The scalars of ops.json, in file order, as read_scalar_events must return them.
std::vector<ScalarEvent> expected_scalars(const json& spec) {
  std::vector<ScalarEvent> out;
  for (const auto& op : spec["ops"]) {
    const auto step = op["step"].get<int64_t>();
    const auto wall_time = op["wall_time"].get<double>();
    if (op["op"] == "scalar") {
      out.push_back({wall_time, step, op["tag"], static_cast<float>(as_number(op["value"]))});
    } else if (op["op"] == "scalars") {
      for (const auto& [tag, value] : op["values"].items())  // nlohmann's objects iterate in key order
        out.push_back({wall_time, step, tag, static_cast<float>(as_number(value))});
    }
  }
  return out;
}

TEST(ReadScalarEvents, ReadsTheProtobufReference) {
  const json spec = load_ops()["files"][0];
  const auto events = read_scalar_events(kDir + "/" + spec["name"].get<std::string>());
  const auto want = expected_scalars(spec);
  ASSERT_EQ(events.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(events[i], want[i]) << i << ": " << events[i].tag << " step " << events[i].step << " value "
                                  << events[i].value << " time " << events[i].wall_time;
  }
  EXPECT_EQ(events.at(1).value, 1e-4f);  // stored as float32, as simple_value is
}

TEST(ReadRunScalars, AResumedRunReplacesTheStepsItRepeats) {
  TempDir dir;
  const std::string run = dir.file("tensorboard");
  {
    EventWriter first(run, {1700000000.0, std::nullopt});
    for (int64_t step = 1; step <= 6; ++step)
      first.add_scalar("loss", static_cast<double>(step), step);
  }
  {
    // Resumed from the checkpoint after step 3: steps 4 to 6 of the first file are orphans.
    EventWriter resumed(run, {1700000100.0, 4});
    resumed.add_scalar("loss", 40.0, 4);
    resumed.add_scalar("loss", 50.0, 5);
  }
  std::vector<std::pair<int64_t, float>> got;
  for (const auto& e : read_run_scalars(run))
    got.emplace_back(e.step, e.value);
  EXPECT_EQ(got,
            (std::vector<std::pair<int64_t, float>>{{1, 1.f}, {2, 2.f}, {3, 3.f}, {4, 40.f}, {5, 50.f}}));
  // Each file alone still holds all it logged.
  std::vector<std::string> files;
  for (const auto& entry : fs::directory_iterator(run))
    files.push_back(entry.path().string());
  std::sort(files.begin(), files.end());
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(read_scalar_events(files[0]).size(), 6u);
  EXPECT_EQ(read_scalar_events(files[1]).size(), 2u);
}

TEST(ReadRunScalars, PurgesWithTheProtobufReferenceFiles) {
  // The two reference files as a run folder: resumed.tfevents (made later) purges steps >= 4.
  TempDir dir;
  const json files = load_ops()["files"];
  const std::vector<std::string> names = {"events.out.tfevents.1700000000.host.1.0",
                                          "events.out.tfevents.1700000200.host.2.0"};
  for (size_t i = 0; i < 2; ++i)
    write_bytes(dir.file(names[i]), read_bytes(kDir + "/" + files[i]["name"].get<std::string>()));
  write_bytes(dir.file("notes.txt"), {'x'});  // not an event file: ignored
  std::vector<ScalarEvent> want;
  for (const auto& e : expected_scalars(files[0])) {
    if (e.step < 4) want.push_back(e);
  }
  want.push_back({1700000201.0, 4, "train/loss", 1.5f});
  const auto got = read_run_scalars(dir.path().string());
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_EQ(got[i], want[i]) << i << ": " << got[i].tag << " step " << got[i].step;
}

TEST(ReadRunScalars, EmptyAndMissingFolders) {
  TempDir dir;
  EXPECT_TRUE(read_run_scalars(dir.path().string()).empty());
  const std::string missing = dir.file("missing");
  const std::string message = error_message([&] { read_run_scalars(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
}

TEST(EventWriter, RoundTripWithDefaultWallTime) {
  TempDir dir;
  const double before =
      std::floor(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  EventWriter writer(dir.file("a/b/tensorboard"));  // missing folders are made
  writer.add_scalar("loss", 0.5, 10);
  writer.add_scalars({{"b", 2.0}, {"a", 1.0}}, 11);
  writer.add_text("notes", "ignored by the scalar reader", 12);
  writer.flush();
  // Flushed events are readable while the writer is still open.
  const auto events = read_scalar_events(writer.path());
  const double after =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].tag, "loss");
  EXPECT_EQ(events[0].value, 0.5f);
  EXPECT_EQ(events[0].step, 10);
  EXPECT_EQ(events[1].tag, "a");  // one Event, values in tag order
  EXPECT_EQ(events[2].tag, "b");
  EXPECT_EQ(events[1].wall_time, events[2].wall_time);
  EXPECT_EQ(events[2].step, 11);
  for (const auto& e : events) {
    EXPECT_GE(e.wall_time, before);
    EXPECT_LE(e.wall_time, after);
  }
}

TEST(EventWriter, NamesFilesAsTensorBoardDoes) {
  TempDir dir;
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof host - 1), 0);
  EventWriter first(dir.path().string(), {1700000000.75, std::nullopt});
  EventWriter second(dir.path().string(),
                     {1700000000.25, std::nullopt});  // same second: the counter keeps them apart
  const std::string prefix =
      "events.out.tfevents.1700000000." + std::string(host) + "." + std::to_string(getpid()) + ".";
  for (const auto* writer : {&first, &second}) {
    const std::string name = fs::path(writer->path()).filename().string();
    EXPECT_EQ(name.rfind(prefix, 0), 0u) << name;
    EXPECT_EQ(fs::path(writer->path()).parent_path(), dir.path());
  }
  EXPECT_NE(first.path(), second.path());
  // Before 2001-09-09 the seconds are zero-padded to ten digits, like "%010d".
  EventWriter early(dir.path().string(), {12345.5, std::nullopt});
  EXPECT_EQ(fs::path(early.path()).filename().string().rfind("events.out.tfevents.0000012345.", 0), 0u);
}

TEST(EventWriter, FirstRecordIsTheFileVersion) {
  TempDir dir;
  std::string path;
  {
    EventWriter writer(dir.path().string(), {1700000000.75, std::nullopt});
    path = writer.path();
  }  // the destructor closes
  const auto bytes = read_bytes(path);
  // Event{wall_time (fixed64, key 0x09), file_version (key 0x1a, 13 bytes)}: 9 + 2 + 13 = 24 bytes of data.
  ASSERT_EQ(bytes.size(), 12u + 24u + 4u);
  const std::string data(bytes.begin() + 12, bytes.begin() + 36);
  EXPECT_EQ(data[0], '\x09');
  double wall_time = 0;
  std::memcpy(&wall_time, data.data() + 1, 8);
  EXPECT_EQ(wall_time, 1700000000.75);
  EXPECT_EQ(data.substr(9), std::string("\x1a\x0d") + "brain.Event:2");
  EXPECT_TRUE(read_scalar_events(path).empty());
}

TEST(EventWriter, RefusesBadTagsAndUseAfterClose) {
  TempDir dir;
  EventWriter writer(dir.path().string());
  EXPECT_NE(error_message([&] { writer.add_scalar("", 1.0, 0); }).find("must not be empty"),
            std::string::npos);
  for (const std::string bad : {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "ok\xf4\x90\x80\x80"}) {
    const std::string message = error_message([&] { writer.add_scalar(bad, 1.0, 0); });
    EXPECT_NE(message.find("not valid UTF-8"), std::string::npos) << message;
    EXPECT_NE(message.find(writer.path()), std::string::npos) << message;
  }
  EXPECT_NE(error_message([&] { writer.add_text("t", "\x80", 0); }).find("not valid UTF-8"),
            std::string::npos);
  EXPECT_NE(error_message([&] { writer.add_scalars({}, 0); }).find("at least one value"), std::string::npos);
  writer.add_scalar("ünïcode ✓ 𝄞", 1.0, 0);  // 2-, 3- and 4-byte sequences are fine
  writer.close();
  writer.close();  // a no-op
  const std::string message = error_message([&] { writer.add_scalar("loss", 1.0, 1); });
  EXPECT_NE(message.find("closed"), std::string::npos) << message;
  EXPECT_NE(message.find(writer.path()), std::string::npos) << message;
  ASSERT_EQ(read_scalar_events(writer.path()).size(), 1u);
  EXPECT_EQ(read_scalar_events(writer.path())[0].tag, "ünïcode ✓ 𝄞");
}

TEST(EventWriter, FolderErrorsNameThePath) {
  TempDir dir;
  write_bytes(dir.file("plain"), {'x'});
  const std::string folder = dir.file("plain") + "/tensorboard";
  const std::string message = error_message([&] { EventWriter writer(folder); });
  EXPECT_NE(message.find(folder), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
}

// A three-scalar file; `offsets` receives each record's byte offset.
std::string three_scalars(const TempDir& dir, std::vector<size_t>& offsets) {
  EventWriter writer(dir.file("tb"), {1700000000.0, std::nullopt});
  writer.add_scalar("a", 1.0, 1, 1700000001.0);
  writer.add_scalar("b", 2.0, 2, 1700000002.0);
  writer.add_scalar("c", 3.0, 3, 1700000003.0);
  writer.close();
  const auto bytes = read_bytes(writer.path());
  for (size_t pos = 0; pos < bytes.size();) {
    offsets.push_back(pos);
    uint64_t length = 0;
    std::memcpy(&length, bytes.data() + pos, 8);
    pos += 16 + length;
  }
  EXPECT_EQ(offsets.size(), 4u);
  return writer.path();
}

TEST(ReadScalarEvents, CorruptRecordsNameFileAndOffset) {
  TempDir dir;
  std::vector<size_t> offsets;
  const std::string path = three_scalars(dir, offsets);
  const auto good = read_bytes(path);
  struct Damage {
    size_t at;
    const char* what;
  };
  // A byte of record 2's data, of record 3's length, of record 1's data CRC and of record 2's length CRC.
  for (const Damage& d :
       {Damage{offsets[2] + 14, "CRC of its data"}, Damage{offsets[3], "CRC of its length"},
        Damage{offsets[2] - 2, "CRC of its data"}, Damage{offsets[2] + 9, "CRC of its length"}}) {
    auto bytes = good;
    bytes[d.at] = static_cast<char>(bytes[d.at] ^ 0x20);
    write_bytes(path, bytes);
    const std::string message = error_message([&] { read_scalar_events(path); });
    const size_t record = d.at < offsets[2] ? offsets[1] : d.at < offsets[3] ? offsets[2] : offsets[3];
    EXPECT_NE(message.find(path + ": record at byte " + std::to_string(record) + ": corrupt record"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(d.what), std::string::npos) << message;
  }
}

TEST(ReadScalarEvents, StopsAtARecordCutShort) {
  TempDir dir;
  std::vector<size_t> offsets;
  const std::string path = three_scalars(dir, offsets);
  const auto good = read_bytes(path);
  // Cut inside the last record's header, data and CRC: the first two scalars remain.
  for (size_t cut : {offsets[3] + 5, offsets[3] + 20, good.size() - 1}) {
    write_bytes(path, std::vector<char>(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(cut)));
    const auto events = read_scalar_events(path);
    ASSERT_EQ(events.size(), 2u) << "cut at " << cut;
    EXPECT_EQ(events[1].tag, "b");
  }
}

// Frames `data` as one TFRecord.
std::string frame(const std::string& data) {
  std::string out(8, '\0');
  const uint64_t length = data.size();
  std::memcpy(out.data(), &length, 8);
  const uint32_t length_crc = masked_crc32c(out.data(), 8);
  out.append(reinterpret_cast<const char*>(&length_crc), 4);
  out += data;
  const uint32_t data_crc = masked_crc32c(data.data(), data.size());
  out.append(reinterpret_cast<const char*>(&data_crc), 4);
  return out;
}

TEST(ReadScalarEvents, MalformedEventsAreErrors) {
  TempDir dir;
  const std::string path = dir.file("bad.tfevents");
  const std::string first = frame(std::string("\x1a\x0d") + "brain.Event:2");
  struct Case {
    std::string event;
    const char* what;
  };
  const std::vector<Case> cases = {
      {std::string("\x2a\x04\x0a\x02\x0a\x05", 6), "runs past the end"},  // a tag longer than its Value
      {std::string("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", 12), "longer than 10 bytes"},
      {std::string("\x10", 1), "truncated varint"},
      {std::string("\x09\x00\x00", 3), "truncated fixed-width"},
      {std::string("\x08\x01", 2), "wire type 0, expected 1"},  // wall_time as a varint
      {std::string("\x1b", 1), "unsupported wire type 3"},      // field 3 as a (deprecated) group
  };
  for (const auto& c : cases) {
    const std::string file = first + frame(c.event);
    write_bytes(path, std::vector<char>(file.begin(), file.end()));
    const std::string message = error_message([&] { read_scalar_events(path); });
    EXPECT_NE(message.find(path + ": record at byte " + std::to_string(first.size()) + ": malformed Event"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find(c.what), std::string::npos) << message;
  }
  // Unknown fields are skipped, as protobuf does: a source_metadata (10) and a Summary.Value.node_name (7).
  std::string value = std::string("\x0a\x01x\x3a\x02nn\x15", 8);
  const float one = 1.0f;
  value.append(reinterpret_cast<const char*>(&one), 4);
  const std::string event = std::string("\x52\x02\x0a\x00\x2a", 5) + static_cast<char>(value.size() + 2) +
                            "\x0a" + static_cast<char>(value.size()) + value;
  const std::string file = first + frame(event);
  write_bytes(path, std::vector<char>(file.begin(), file.end()));
  const auto events = read_scalar_events(path);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].tag, "x");
  EXPECT_EQ(events[0].value, 1.0f);
}

TEST(ReadScalarEvents, MissingFileIsNamed) {
  TempDir dir;
  const std::string path = dir.file("none.tfevents");
  EXPECT_NE(error_message([&] { read_scalar_events(path); }).find(path), std::string::npos);
}

// Google's protobuf runtime parses what hlip writes, and finds what was logged: runs only where Debian's
// python3 has protobuf (python3-protobuf) or TensorBoard.
TEST(EventWriter, GoogleProtobufParsesWhatHlipWrites) {
  if (std::system("/usr/bin/python3 -c 'import google.protobuf' 2>/dev/null") != 0) {
    GTEST_SKIP() << "no /usr/bin/python3 with google.protobuf (python3-protobuf)";
  }
  TempDir dir;
  EventWriter writer(dir.file("tb"));
  writer.add_scalar("train/loss", 0.75, 7);
  writer.add_scalar("train/lr", 3e-5, 8);
  writer.add_scalars({{"val/auc", 0.9}, {"val/acc", 0.0}}, 9);
  writer.add_text("params", "lr = 0.001\nname = \"ünï\"", 0);
  writer.close();

  const std::string out = dir.file("out.json");
  const std::string command = "/usr/bin/python3 " + kScript + " --read " + writer.path() + " > " + out;
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  std::ifstream in(out);
  const json doc = json::parse(in);
  const auto& events = doc["events"];
  ASSERT_EQ(events.size(), 5u) << doc.dump();
  EXPECT_EQ(events[0]["file_version"], "brain.Event:2");
  EXPECT_EQ(events[1]["step"], 7);
  EXPECT_EQ(events[1]["values"], json::parse(R"([{"tag": "train/loss", "simple_value": 0.75}])"));
  EXPECT_EQ(events[2]["values"][0]["simple_value"].get<double>(), static_cast<double>(3e-5f));
  EXPECT_EQ(
      events[3]["values"],
      json::parse(
          R"([{"tag": "val/acc", "simple_value": 0.0}, {"tag": "val/auc", "simple_value": 0.8999999761581421}])"));
  EXPECT_EQ(events[4]["step"], 0);
  EXPECT_EQ(events[4]["values"][0]["tag"], "params");
  EXPECT_EQ(events[4]["values"][0]["text"], json::array({"lr = 0.001\nname = \"ünï\""}));
  EXPECT_EQ(events[4]["values"][0]["plugin"], "text");
  EXPECT_EQ(events[4]["values"][0]["dtype"], 7);  // DT_STRING
  EXPECT_EQ(events[4]["values"][0]["shape"], json::array({1}));
  // Wall times are now, as the reader sees them too.
  const auto scalars = read_scalar_events(writer.path());
  ASSERT_EQ(scalars.size(), 4u);
  EXPECT_EQ(events[1]["wall_time"].get<double>(), scalars[0].wall_time);
  EXPECT_GT(scalars[0].wall_time, 1.7e9);
}

}  // namespace
}  // namespace hlip::io
