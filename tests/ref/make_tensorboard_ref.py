#!/usr/bin/python3
"""TensorBoard event files made, and read, by Google's protobuf runtime, independently of hlip's C++ encoder.

    /usr/bin/python3 tests/ref/make_tensorboard_ref.py            writes tests/data/tensorboard/
    /usr/bin/python3 tests/ref/make_tensorboard_ref.py --read F   prints event file F as JSON

Writing: tests/data/tensorboard/ops.json lists the calls that tests/unit/io/test_tensorboard.cpp replays on
hlip::io::EventWriter, and reference.tfevents and resumed.tfevents hold what they must produce: Event messages built and serialized
by protobuf (Debian's python3-protobuf), framed as TFRecords here with a bit-by-bit CRC32C. No TensorBoard
writer is used: neither tensorboard nor TensorFlow is packaged in Debian, and torch.utils.tensorboard needs the
former. The schema is therefore declared below through protobuf's descriptor API, with the field names, numbers,
types and oneofs of TensorBoard's compat/proto event.proto, summary.proto, tensor.proto and tensor_shape.proto
(the fields hlip writes, and a few neighbours). Where the `tensorboard` package is importable, its own event_pb2 is used instead.

The mirror of torch.utils.tensorboard.SummaryWriter is exact for add_scalar (Summary.Value{tag, simple_value})
and for add_text's value (a DT_STRING tensor of shape [1] with plugin "text"), except that hlip keeps the tag as
given where torch appends "/text_summary". The first event is {wall_time, file_version: "brain.Event:2"}; a
resumed run's file (SummaryWriter(purge_step=S)) follows it with {wall_time, step: S, session_log: {status: START}}.

Reading (--read) checks both CRCs of every record, parses each Event with protobuf, checks that protobuf
re-serializes it to the same bytes (so the writer's encoding is canonical), and prints
{"events": [{"wall_time", "step", "file_version" | "session_log" | "values": [{"tag", "simple_value" | "text", "plugin",
"dtype", "shape"}]}]}, non-finite floats as the strings "nan", "inf", "-inf".
"""

import json
import math
import os
import struct
import sys

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "tensorboard"))
DT_STRING = 7


def event_class():
    """The tensorboard.Event message class: TensorBoard's own where installed, else one declared here."""
    try:
        from tensorboard.compat.proto import event_pb2
        return event_pb2.Event
    except ImportError:
        pass
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="hlip_tensorboard_subset.proto", package="tensorboard",
                                              syntax="proto3")

    def message(parent, name, fields, oneofs=()):
        m = parent.add(name=name)
        for oneof in oneofs:
            m.oneof_decl.add(name=oneof)
        for field_name, number, kind, type_name, oneof in fields:
            label = F.LABEL_REPEATED if kind == "repeated" else F.LABEL_OPTIONAL
            types = {"double": F.TYPE_DOUBLE, "float": F.TYPE_FLOAT, "int64": F.TYPE_INT64, "bool": F.TYPE_BOOL,
                     "int32": F.TYPE_INT32, "string": F.TYPE_STRING, "bytes": F.TYPE_BYTES,
                     "enum": F.TYPE_ENUM, "message": F.TYPE_MESSAGE, "repeated": None}
            f = m.field.add(name=field_name, number=number, label=label)
            if kind == "repeated":
                kind, type_name = type_name.split(":", 1) if ":" in type_name else (type_name, None)
            f.type = types[kind]
            if type_name:
                f.type_name = type_name
            if oneof is not None:
                f.oneof_index = oneof
        return m

    # types.proto: enum DataType (only the value hlip writes, plus the zero every proto3 enum needs).
    data_type = file.enum_type.add(name="DataType")
    data_type.value.add(name="DT_INVALID", number=0)
    data_type.value.add(name="DT_STRING", number=DT_STRING)
    # tensor_shape.proto
    shape = message(file.message_type, "TensorShapeProto",
                    [("dim", 2, "repeated", "message:.tensorboard.TensorShapeProto.Dim", None),
                     ("unknown_rank", 3, "bool", None, None)])
    message(shape.nested_type, "Dim", [("size", 1, "int64", None, None), ("name", 2, "string", None, None)])
    # tensor.proto
    message(file.message_type, "TensorProto",
            [("dtype", 1, "enum", ".tensorboard.DataType", None),
             ("tensor_shape", 2, "message", ".tensorboard.TensorShapeProto", None),
             ("version_number", 3, "int32", None, None),
             ("tensor_content", 4, "bytes", None, None),
             ("string_val", 8, "repeated", "bytes", None)])
    # summary.proto
    metadata = message(file.message_type, "SummaryMetadata",
                       [("plugin_data", 1, "message", ".tensorboard.SummaryMetadata.PluginData", None),
                        ("display_name", 2, "string", None, None),
                        ("summary_description", 3, "string", None, None)])
    message(metadata.nested_type, "PluginData",
            [("plugin_name", 1, "string", None, None), ("content", 2, "bytes", None, None)])
    summary = message(file.message_type, "Summary",
                      [("value", 1, "repeated", "message:.tensorboard.Summary.Value", None)])
    message(summary.nested_type, "Value",
            [("node_name", 7, "string", None, None),
             ("tag", 1, "string", None, None),
             ("metadata", 9, "message", ".tensorboard.SummaryMetadata", None),
             ("simple_value", 2, "float", None, 0),
             ("obsolete_old_style_histogram", 3, "bytes", None, 0),
             ("tensor", 8, "message", ".tensorboard.TensorProto", 0)],
            oneofs=["value"])
    # event.proto
    session_log = message(file.message_type, "SessionLog",
                          [("status", 1, "enum", ".tensorboard.SessionLog.SessionStatus", None),
                           ("checkpoint_path", 2, "string", None, None),
                           ("msg", 3, "string", None, None)])
    status = session_log.enum_type.add(name="SessionStatus")
    for name, value in [("STATUS_UNSPECIFIED", 0), ("START", 1), ("STOP", 2), ("CHECKPOINT", 3)]:
        status.value.add(name=name, number=value)
    message(file.message_type, "Event",
            [("wall_time", 1, "double", None, None),
             ("step", 2, "int64", None, None),
             ("file_version", 3, "string", None, 0),
             ("graph_def", 4, "bytes", None, 0),
             ("summary", 5, "message", ".tensorboard.Summary", 0),
             ("session_log", 7, "message", ".tensorboard.SessionLog", 0),
             ("meta_graph_def", 9, "bytes", None, 0)],
            oneofs=["what"])

    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    descriptor = pool.FindMessageTypeByName("tensorboard.Event")
    if hasattr(message_factory, "GetMessageClass"):  # protobuf >= 4.22
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def crc32c(data):
    """CRC-32C bit by bit (reflected polynomial 0x82F63B78), deliberately unlike hlip's table."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def record(data):
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def self_check():
    # RFC 3720 (iSCSI) B.4 test vectors and TFRecord's masking of them.
    assert crc32c(b"123456789") == 0xE3069283
    assert crc32c(bytes(32)) == 0x8A9136AA
    assert crc32c(b"\xff" * 32) == 0x62A8AB43
    assert crc32c(bytes(range(32))) == 0x46DD794E
    assert crc32c(bytes(range(31, -1, -1))) == 0x113FDB5C


def number(value):
    return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))


def from_number(value):
    return float(value) if isinstance(value, str) else value


SESSION_START = 1  # SessionLog.START

# The calls the C++ test replays for each file: EventWriter(dir, {start_time, purge_step}), then each op.
LONG_TEXT = "".join(f"line {i:05d}: Größe — ✓\n" for i in range(700))  # over 16 KiB: a 3-byte varint length
OPS = [  # reference.tfevents
    {"op": "scalar", "tag": "train/loss", "value": 2.5, "step": 1, "wall_time": 1700000001.5},
    {"op": "scalar", "tag": "train/lr", "value": 1e-4, "step": 1, "wall_time": 1700000001.123456789},
    {"op": "scalar", "tag": "zero", "value": 0.0, "step": 0, "wall_time": 1700000002.0},
    {"op": "scalar", "tag": "negative", "value": -3.75, "step": 2 ** 40 + 3, "wall_time": 1700000003.0},
    {"op": "scalar", "tag": "step/-1", "value": 1.0, "step": -1, "wall_time": 1700000004.0},
    {"op": "scalar", "tag": "non-finite/inf", "value": "inf", "step": 5, "wall_time": 1700000005.0},
    {"op": "scalar", "tag": "non-finite/-inf", "value": "-inf", "step": 5, "wall_time": 1700000005.0},
    {"op": "scalar", "tag": "non-finite/nan", "value": "nan", "step": 5, "wall_time": 1700000005.0},
    {"op": "scalar", "tag": "métrique/äuc ✓", "value": 0.875, "step": 6, "wall_time": 1700000006.0},
    {"op": "scalars", "values": {"val/auc_brain": 0.9, "val/auc_mean": 0.8765432, "val/auc_tumor": 0.85,
                                 "val/count": 123456789.0},
     "step": 100, "wall_time": 1700000100.25},
    {"op": "text", "tag": "params", "text": "lr = 0.001\nbatch_size = 8\n", "step": 0, "wall_time": 1700000000.875},
    {"op": "text", "tag": "empty", "text": "", "step": 3, "wall_time": 1700000007.0},
    {"op": "text", "tag": "medium", "text": "A " * 100 + "report.", "step": 4, "wall_time": 1700000008.0},
    {"op": "text", "tag": "long", "text": LONG_TEXT, "step": 9, "wall_time": 1700000009.0},
]
FILES = [
    {"name": "reference.tfevents", "start_time": 1700000000.75, "ops": OPS},
    # A resumed run's file, as torch's SummaryWriter(purge_step=4) starts it (less torch's second file_version
    # event, which carries nothing).
    {"name": "resumed.tfevents", "start_time": 1700000200.5, "purge_step": 4,
     "ops": [{"op": "scalar", "tag": "train/loss", "value": 1.5, "step": 4, "wall_time": 1700000201.0}]},
]


def build_events(Event, spec):
    events = [Event(wall_time=spec["start_time"], file_version="brain.Event:2")]
    if "purge_step" in spec:
        start = Event(wall_time=spec["start_time"], step=spec["purge_step"])
        start.session_log.status = SESSION_START
        events.append(start)
    for op in spec["ops"]:
        event = Event(wall_time=op["wall_time"], step=op["step"])
        if op["op"] == "scalar":
            event.summary.value.add(tag=op["tag"], simple_value=from_number(op["value"]))
        elif op["op"] == "scalars":
            # hlip's std::map iterates in byte order of the keys' UTF-8.
            for tag in sorted(op["values"], key=lambda t: t.encode()):
                event.summary.value.add(tag=tag, simple_value=op["values"][tag])
        else:
            value = event.summary.value.add(tag=op["tag"])
            value.metadata.plugin_data.plugin_name = "text"
            value.tensor.dtype = DT_STRING
            value.tensor.tensor_shape.dim.add(size=1)
            value.tensor.string_val.append(op["text"].encode("utf-8"))
        events.append(event)
    return events


def write_reference():
    self_check()
    Event = event_class()
    os.makedirs(OUT, exist_ok=True)
    for spec in FILES:
        events = build_events(Event, spec)
        with open(os.path.join(OUT, spec["name"]), "wb") as f:
            for event in events:
                f.write(record(event.SerializeToString()))
        print(f"wrote {len(events)} events to {os.path.join(OUT, spec['name'])}")
    with open(os.path.join(OUT, "ops.json"), "w", encoding="utf-8") as f:
        json.dump({"files": FILES}, f, indent=1, ensure_ascii=False)
        f.write("\n")


def read_events(path):
    Event = event_class()
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        header = data[pos:pos + 8]
        if len(header) < 8:
            raise SystemExit(f"{path}: truncated record at byte {pos}")
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if length_crc != masked_crc32c(header):
            raise SystemExit(f"{path}: length CRC mismatch at byte {pos}")
        body = data[pos + 12:pos + 12 + length]
        (body_crc,) = struct.unpack("<I", data[pos + 12 + length:pos + 16 + length])
        if body_crc != masked_crc32c(body):
            raise SystemExit(f"{path}: data CRC mismatch at byte {pos}")
        event = Event()
        event.ParseFromString(body)
        if event.SerializeToString() != body:
            raise SystemExit(f"{path}: the Event at byte {pos} is not in protobuf's canonical encoding")
        entry = {"wall_time": event.wall_time, "step": event.step}
        if event.WhichOneof("what") == "file_version":
            entry["file_version"] = event.file_version
        elif event.WhichOneof("what") == "session_log":
            entry["session_log"] = event.session_log.status
        else:
            entry["values"] = []
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind == "simple_value":
                    entry["values"].append({"tag": value.tag, "simple_value": number(value.simple_value)})
                elif kind == "tensor":
                    entry["values"].append({
                        "tag": value.tag,
                        "text": [s.decode("utf-8") for s in value.tensor.string_val],
                        "plugin": value.metadata.plugin_data.plugin_name,
                        "dtype": value.tensor.dtype,
                        "shape": [d.size for d in value.tensor.tensor_shape.dim]})
                else:
                    raise SystemExit(f"{path}: unexpected value kind {kind} at byte {pos}")
        out.append(entry)
        pos += 16 + length
    json.dump({"events": out}, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--read":
        read_events(sys.argv[2])
    elif len(sys.argv) == 1:
        write_reference()
    else:
        raise SystemExit(__doc__)
