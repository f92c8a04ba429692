#!/usr/bin/python3
"""Seed corpus for hlip's fuzz targets: small valid files of each format, written by the reference libraries.

Writes fuzz/corpus/nifti_header/ (nibabel), fuzz/corpus/npy/ (numpy) and fuzz/corpus/safetensors/ (by hand,
following the format: 8-byte little-endian header length, JSON header, packed data). Files are tiny so that
libFuzzer mutates them quickly; CTest replays them through each target (fuzz_<name>_replay). Reproducers of
fixed crashes are added next to them by hand, named crash-<what>.

Run with Debian's interpreter: /usr/bin/python3 fuzz/make_corpus.py
"""

import gzip
import io
import json
import os
import struct

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(ROOT, "corpus")


def write(target, name, data):
    folder = os.path.join(CORPUS, target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def nifti_bytes(img):
    bio = io.BytesIO()
    file_map = img.make_file_map({"image": bio, "header": bio})
    img.to_file_map(file_map)
    return bio.getvalue()


def nifti_seeds():
    affine = np.array([[-0.9, 0.1, 0, 20], [0.05, 1.1, 0, -30], [0, 0, 2.5, 10], [0, 0, 0, 1]])
    i16 = np.arange(2 * 3 * 2, dtype=np.int16).reshape(2, 3, 2) - 5
    write("nifti_header", "i16_3d.nii", nifti_bytes(nib.Nifti1Image(i16, affine)))

    scaled = nib.Nifti1Image(np.arange(8, dtype=np.uint8).reshape(2, 2, 2), affine)
    scaled.header.set_slope_inter(0.5, -3)
    scaled.header.set_qform(affine, code=1)
    scaled.header.set_sform(None, code=0)
    write("nifti_header", "u8_scaled_qform.nii", nifti_bytes(scaled))

    f32_4d = nib.Nifti1Image(np.linspace(-1, 1, 2 * 2 * 1 * 3, dtype=np.float32).reshape(2, 2, 1, 3), affine)
    write("nifti_header", "f32_4d.nii.gz", gzip.compress(nifti_bytes(f32_4d), mtime=0))

    f64 = nib.Nifti2Image(np.array([[[1.5, np.nan]]], dtype=np.float64), np.eye(4))
    write("nifti_header", "nifti2_f64.nii", nifti_bytes(f64))

    big = nib.Nifti1Image(i16.astype(">i2"), affine)
    write("nifti_header", "big_endian_i16.nii", nifti_bytes(big))

    write("nifti_header", "truncated_i16.nii", nifti_bytes(nib.Nifti1Image(i16, affine))[:360])


def npy_bytes(array, version=None):
    bio = io.BytesIO()
    np.lib.format.write_array(bio, array, version=version, allow_pickle=False)
    return bio.getvalue()


def npy_seeds():
    write("npy", "u8_c.npy", npy_bytes(np.arange(6, dtype=np.uint8).reshape(2, 3)))
    write("npy", "i16_fortran.npy", npy_bytes(np.asfortranarray(np.arange(-6, 6, dtype=np.int16).reshape(2, 3, 2))))
    write("npy", "f32_3d.npy", npy_bytes(np.linspace(0, 1, 8, dtype=np.float32).reshape(2, 2, 2)))
    write("npy", "f16_v2.npy", npy_bytes(np.array([1.5, -2.0], dtype=np.float16), version=(2, 0)))
    write("npy", "bool_scalar.npy", npy_bytes(np.array(True)))
    write("npy", "u16_empty.npy", npy_bytes(np.zeros((0, 3), dtype=np.uint16)))
    write("npy", "i64_v3.npy", npy_bytes(np.array([1, -1], dtype=np.int64), version=(3, 0)))


def safetensors_bytes(tensors, metadata=None):
    header = {}
    offset = 0
    data = b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds():
    write(
        "safetensors",
        "f32_i64_metadata.safetensors",
        safetensors_bytes(
            {
                "visual.proj": ("F32", [2, 2], np.arange(4, dtype="<f4").tobytes()),
                "step": ("I64", [], np.array(7, dtype="<i8").tobytes()),
            },
            {"format": "pt"},
        ),
    )
    write("safetensors", "bf16_bool.safetensors",
          safetensors_bytes({"a": ("BF16", [2], b"\x80\x3f\x00\x40"), "m": ("BOOL", [3], b"\x01\x00\x01")}))
    write("safetensors", "empty_tensor.safetensors", safetensors_bytes({"e": ("F16", [0, 4], b"")}))
    write("safetensors", "u8_i16.safetensors",
          safetensors_bytes({"b": ("U8", [3], b"\x01\x02\x03"), "c": ("I16", [1, 2], b"\xff\xff\x02\x00")}))


def main():
    nifti_seeds()
    npy_seeds()
    safetensors_seeds()


if __name__ == "__main__":
    main()
