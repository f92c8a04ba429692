#pragma once
// TensorBoard event files, written without TensorFlow or protobuf. A file is a sequence of TFRecords
//   uint64 length (LE) | uint32 masked CRC32C of those 8 bytes | data | uint32 masked CRC32C of data
// each holding one serialized `tensorboard.Event` protobuf (event.proto / summary.proto / tensor.proto in
// TensorBoard's compat/proto). The first event carries `file_version: "brain.Event:2"`; the others a Summary
// (or, first in a resumed run's file, a SessionLog START).
//
//   hlip::io::EventWriter tb("logs/run/tensorboard");    // creates the folder if needed
//   tb.add_scalar("train/loss", 2.31, step);
//   tb.add_scalars({{"val/auc_mean", 0.87}, {"val/auc_tumor", 0.91}}, step);
//   tb.add_text("params", params_toml, 0);
//   tb.flush();                                          // on disk now (fflush + fsync)
//
//   hlip::io::EventWriter resumed("logs/run/tensorboard", {std::nullopt, /*purge_step=*/1201});  // --resume
//
//   for (const auto& e : hlip::io::read_scalar_events(tb.path())) use(e.tag, e.step, e.value);
//   auto curve = hlip::io::read_run_scalars("logs/run/tensorboard");  // all files, resumes applied
//
// The encoding is what TensorBoard's Python protobuf would serialize for the same messages (fields in number
// order, proto3 defaults omitted), so the bytes equal a reference writer's
// (tests/ref/make_tensorboard_ref.py).

#include <cstdint>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hlip::io {

// CRC-32C (Castagnoli; reflected polynomial 0x82F63B78, as in iSCSI and TFRecord). Pass a previous result
// as `crc` to continue over more bytes: crc32c(b, crc32c(a)) == crc32c(a + b).
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
// TFRecord's masked form, ((crc >> 15) | (crc << 17)) + 0xa282ead8, so that a CRC of data holding CRCs
// does not degenerate.
uint32_t masked_crc32c(const void* data, size_t size);

// One Summary.Value with a `simple_value`, and the time and step of its Event.
struct ScalarEvent {
  double wall_time = 0;  // seconds since the Unix epoch
  int64_t step = 0;
  std::string tag;
  float value = 0;

  bool operator==(const ScalarEvent& other) const;
};

struct EventWriterOptions {
  // Names the file and stamps its first event (seconds since the epoch); now by default. Fixing it makes the
  // file's bytes reproducible.
  std::optional<double> start_time;
  // For a resumed run: the first step it will log. The file then starts with a SessionLog START event at this
  // step, which makes TensorBoard (and read_run_scalars) drop what earlier files of the folder logged at this
  // step and later, as torch.utils.tensorboard's SummaryWriter(purge_step=...) does.
  std::optional<int64_t> purge_step;
};

// Appends events to a new file `DIR/events.out.tfevents.<unix seconds>.<hostname>.<pid>.<n>` (the name
// TensorBoard's own Python writer uses; n counts the writers this process opened). Events go through a
// stdio buffer: call flush() when they must be visible to TensorBoard or survive a crash. Not thread-safe.
// Errors (the folder cannot be made, the file cannot be created or written) are hlip::Error naming the path.
class EventWriter {
 public:
  explicit EventWriter(const std::string& dir, const EventWriterOptions& options = {});
  EventWriter(const EventWriter&) = delete;
  EventWriter& operator=(const EventWriter&) = delete;
  // Flushes and closes; errors are swallowed here, so call close() to see them.
  ~EventWriter();

  const std::string& path() const { return path_; }

  // One Event holding one Summary.Value{tag, simple_value}. The value is stored as float32, as TensorBoard's
  // `simple_value` is. `wall_time` defaults to now. Tags must be non-empty UTF-8.
  void add_scalar(const std::string& tag, double value, int64_t step,
                  std::optional<double> wall_time = std::nullopt);
  // One Event holding one Summary.Value per entry, in the map's order.
  void add_scalars(const std::map<std::string, double>& values, int64_t step,
                   std::optional<double> wall_time = std::nullopt);
  // One Event holding a Summary.Value{tag, metadata: {plugin_data: {plugin_name: "text"}}, tensor: DT_STRING
  // of shape [1] holding `text`}, which TensorBoard's Text tab renders as Markdown. The tag is written as
  // given (torch.utils.tensorboard appends "/text_summary"; TensorBoard's tf.summary.text does not). `text`
  // must be UTF-8.
  void add_text(const std::string& tag, const std::string& text, int64_t step,
                std::optional<double> wall_time = std::nullopt);

  // Writes the buffered events and forces them to disk.
  void flush();
  // flush() and close the file; later add_* calls throw. Closing twice is a no-op.
  void close();

 private:
  void write_record(std::string_view event);

  std::string path_;
  std::FILE* file_ = nullptr;
};

// Every Summary.Value with a `simple_value` in the event file at `path`, in file order (other values and the
// other events are skipped; a SessionLog START drops the scalars before it with a step at or after its own,
// as in read_run_scalars). Both CRCs of every record are checked: a mismatch or a malformed Event is an
// hlip::Error naming the file and the record's byte offset. A record cut short at the end of the file is
// ignored, as TensorBoard does, since it may be one still being written.
std::vector<ScalarEvent> read_scalar_events(const std::string& path);

// The scalars of a run folder as TensorBoard shows them: the folder's `events.out.tfevents.*` files read in
// name order (TensorBoard's order; the names start with the creation time), where a SessionLog START at step
// S drops the scalars read so far whose step is S or later. An empty list when the folder holds no event
// file.
std::vector<ScalarEvent> read_run_scalars(const std::string& dir);

}  // namespace hlip::io
