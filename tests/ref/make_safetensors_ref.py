#!/usr/bin/python3
"""Writes the safetensors reference files in tests/data/safetensors/ for tests/unit/io/test_safetensors.cpp.

The `safetensors` package is not in Debian, so this is an independent writer that follows the published
format (https://huggingface.co/docs/safetensors) and the reference implementation's choices:
  * 8-byte little-endian header length N, then N bytes of compact JSON, then the tensors' bytes;
  * "__metadata__" first, then the tensors sorted by descending dtype alignment, then by name;
  * the JSON padded with spaces to a multiple of 8 bytes.
It checks itself against three byte strings from the reference's own unit tests before writing anything.
Only numpy, json and struct are used. Run from anywhere:  /usr/bin/python3 tests/ref/make_safetensors_ref.py
"""

import json
import os
import struct

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "safetensors")

# The reference's Dtype enum, in increasing alignment; the writer sorts on the reverse of this order.
DTYPE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16", "I32", "U32", "F32",
               "F64", "I64", "U64"]
NUMPY_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
                "I8": "i1", "U8": "u1", "BOOL": "?"}


def tensor(dtype, values, shape=None):
    """(dtype, shape, raw bytes) for `values`; BF16 is made by truncating float32 values that it holds exactly."""
    if dtype == "BF16":
        f32 = np.asarray(values, dtype="<f4")
        bits = f32.view("<u4")
        assert np.all(bits & 0xFFFF == 0), "BF16 reference values must be exactly representable"
        array = (bits >> 16).astype("<u2")
    else:
        array = np.asarray(values, dtype=NUMPY_DTYPES[dtype])
    if shape is not None:
        array = array.reshape(shape)
    return dtype, list(array.shape), array.tobytes()


def serialize(tensors, metadata=None, order=None):
    """The bytes of a safetensors file; `order` overrides the reference order (for the reader tests only)."""
    if order is None:
        order = sorted(tensors, key=lambda name: (-DTYPE_ORDER.index(tensors[name][0]), name.encode("utf-8")))
    header = {}
    if metadata is not None:
        header["__metadata__"] = dict(sorted(metadata.items()))
    chunks = []
    offset = 0
    for name in order:
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(chunks)


def raw_file(header_text, data=b"", header_length=None):
    """A file with a hand-written header, for the corrupt cases."""
    text = header_text.encode("utf-8")
    n = len(text) if header_length is None else header_length
    return struct.pack("<Q", n) + text + data


def self_check():
    """Byte strings from the reference implementation's tests (safetensors/src/tensor.rs)."""
    assert serialize({}) == bytes([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32])
    with_metadata = serialize({}, {"framework": "pt"})
    assert with_metadata[:8] == struct.pack("<Q", 40)
    assert with_metadata[8:] == b'{"__metadata__":{"framework":"pt"}}     '
    aligned = serialize({"attn0": tensor("F32", [0, 1, 2, 3, 4, 5], (1, 1, 2, 3))})
    assert aligned[:8] == struct.pack("<Q", 72)
    assert aligned[8:80] == b'{"attn0":{"dtype":"F32","shape":[1,1,2,3],"data_offsets":[0,24]}}       '


# Every supported dtype with edge values; test_safetensors.cpp spells out the same values.
def all_dtypes():
    return {
        "f64": tensor("F64", [0.0, -1.5, 1e300, -2.0 ** -1074, np.inf, np.nan], (2, 3)),
        "f32": tensor("F32", [1.0, -0.0, 3.4028234663852886e38, 1.401298464324817e-45, -np.inf, 0.1], (3, 2)),
        "f16": tensor("F16", [65504.0, -65504.0, 2.0 ** -24, 0.5, -0.0, np.inf, 1.0, -2.0], (2, 2, 2)),
        "bf16": tensor("BF16", [1.0, -2.5, 0.15625, 3.3895313892515355e38, -(2.0 ** -126), 256.0], (6,)),
        "i64": tensor("I64", [-(2 ** 63), 2 ** 63 - 1, 0, -1], (2, 2)),
        "i32": tensor("I32", [-(2 ** 31), 2 ** 31 - 1, 7], (3,)),
        "i16": tensor("I16", [-32768, 32767, -2, 3], (1, 4)),
        "i8": tensor("I8", [-128, 127, 0, 5, -6], (5,)),
        "u8": tensor("U8", [0, 255, 128, 1], (2, 2)),
        "bool": tensor("BOOL", [True, False, False, True, True], (5,)),
        "scalar": tensor("F32", [2.75], ()),
        "empty": tensor("F32", [], (0, 3)),
        "empty_i64": tensor("I64", [], (2, 0)),
    }


METADATA = {"format": "pt", "hlip": "reference \u2713 \"quoted\" back\\slash\nnewline\ttab", "empty": ""}


def main():
    self_check()
    os.makedirs(OUT, exist_ok=True)
    files = {}
    files["all_dtypes.safetensors"] = serialize(all_dtypes(), METADATA)

    # Written in plain name order (as writers before the alignment sort did): the I8 tensor leaves the F32 one
    # at an odd offset, which the reader must handle.
    odd = {"a_bytes": tensor("I8", [1, 2, 3]), "b_floats": tensor("F32", [1.5, -2.5], (2,)),
           "c_halfs": tensor("F16", [0.25], (1,))}
    files["name_order_unaligned.safetensors"] = serialize(odd, None, order=["a_bytes", "b_floats", "c_halfs"])
    files["no_tensors.safetensors"] = serialize({}, {"framework": "pt"})

    good_header = '{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    eight = struct.pack("<2f", 1.0, 2.0)
    two = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[%d,%d]},"b":{"dtype":"F32","shape":[1],"data_offsets":[%d,%d]}}'
    corrupt = {
        "too_short": b"\x05\x00\x00",
        "header_length_past_end": raw_file(good_header, eight, header_length=1000),
        "header_length_huge": raw_file(good_header, eight, header_length=2 ** 62),
        "truncated": serialize({"w": tensor("F32", [1, 2, 3, 4])})[:-4],
        "trailing_bytes": serialize({"w": tensor("F32", [1, 2])}) + b"\x00" * 4,
        "offsets_overlap": raw_file(two % (0, 8, 4, 8), eight),
        "offsets_gap": raw_file(two % (0, 8, 12, 16), eight + b"\x00" * 8),
        "offsets_reversed": raw_file('{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}', eight),
        "offsets_past_end": raw_file('{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}', eight),
        "size_mismatch": raw_file('{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', eight),
        "unsupported_dtype": raw_file('{"w":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}}', eight),
        "unknown_dtype": raw_file('{"w":{"dtype":"Q4","shape":[8],"data_offsets":[0,8]}}', eight),
        "duplicate_name": raw_file('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
                                   '"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', eight),
        "negative_dim": raw_file('{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}', eight),
        "shape_overflow": raw_file('{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}',
                                   eight),
        "missing_offsets": raw_file('{"w":{"dtype":"F32","shape":[2]}}', eight),
        "not_json": raw_file('{"w":{"dtype":"F32",', eight),
        "not_an_object": raw_file('[1,2,3]', eight),
        "bad_metadata": raw_file('{"__metadata__":{"epoch":3},' + good_header[1:], eight),
        "bad_utf8": struct.pack("<Q", 8) + b'{"\xff":1} ',
    }
    for name, data in corrupt.items():
        files["corrupt_" + name + ".safetensors"] = data

    for name, data in sorted(files.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(files)} files, {sum(map(len, files.values()))} bytes, to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
