#!/usr/bin/python3
"""Reference NIfTI and .npy files for hlip's volume readers, with what nibabel / numpy read from them.

Writes tests/data/nifti/*.nii[.gz] + expected.json and tests/data/npy/*.npy + expected.json. The NIfTI files
are built from raw headers (nibabel's header classes, then field by field), so scaling, transform codes,
pixdim and byte order are exactly what each case needs: nibabel's image writer would recompute them.
Expectations come from nibabel itself: `img.affine`, `img.shape`, `header.get_zooms()`,
`img.get_fdata(dtype=np.float32)` and `img.dataobj.get_unscaled()`.

It also records checksums for the NIfTI files shipped with Debian's python3-nibabel (tests read those in
place and skip when the package is absent).

Run with Debian's interpreter: /usr/bin/python3 tests/ref/make_nifti_ref.py
"""

import glob
import gzip
import io
import json
import math
import os
import struct

import nibabel as nib
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NIFTI_DIR = os.path.join(ROOT, "data", "nifti")
NPY_DIR = os.path.join(ROOT, "data", "npy")
NIBABEL_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")

SHAPE = (5, 4, 3)


def fnv1a64(data: bytes) -> str:
    """FNV-1a, 64 bit, as hex: the checksum tests/unit/io recompute over float32 voxels in C order."""
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def rotation(axis, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def affine(rot, zooms, offset):
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag(zooms)
    a[:3, 3] = offset
    return a


# A rotated grid with a left-handed (qfac -1) voxel axis, a sheared one, and two plain ones.
A_ROT = affine(rotation(2, 30) @ rotation(0, 10), [0.9, 1.1, -2.5], [-40.5, 20.25, 11.0])
A_SHEAR = np.array([[1.2, 0.3, 0.0, -10.0], [0.0, 0.8, 0.1, 5.5], [0.05, 0.0, 3.0, 2.0], [0, 0, 0, 1]])
A_PLAIN = affine(np.eye(3), [1.0, 1.0, 1.5], [-2.0, -1.5, -1.5])
A_LPS = affine(np.diag([-1.0, -1.0, 1.0]), [0.7, 0.7, 5.0], [90.0, 110.0, -30.0])


def data_for(dtype, shape, seed):
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        vals = rng.integers(info.min, info.max, size=n, endpoint=True, dtype=np.int64)
        vals[0], vals[1], vals[2] = info.min, info.max, 0
        return vals.astype(dt).reshape(shape)
    vals = rng.normal(0.0, 300.0, size=n) + rng.random(n) * 1e-4
    vals[0], vals[1] = -0.0, 1e-30
    return vals.astype(dt).reshape(shape)


def write_nifti(name, data, *, version=1, endian="<", slope=None, inter=None, qform=None, qform_code=0,
                sform=None, sform_code=0, pixdim=None, qfac=None, quatern=None, vox_offset=None,
                descrip=b"", dims=None, srow=None):
    """Writes `data` (numpy, voxel order i, j, k[, t]) under a header set field by field."""
    header_class = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    hdr = header_class(endianness=endian)
    hdr.set_data_dtype(data.dtype)
    hdr.set_data_shape(dims if dims is not None else data.shape)
    if qform is not None:
        hdr.set_qform(qform, code=1)
    hdr["qform_code"] = qform_code
    if sform is not None:
        hdr.set_sform(sform, code=1)
    hdr["sform_code"] = sform_code
    if srow is not None:
        hdr["srow_x"], hdr["srow_y"], hdr["srow_z"] = srow[0], srow[1], srow[2]
    if quatern is not None:
        hdr["quatern_b"], hdr["quatern_c"], hdr["quatern_d"] = quatern
    if pixdim is not None:
        pd = hdr["pixdim"]
        pd[1 : 1 + len(pixdim)] = pixdim
        hdr["pixdim"] = pd
    if qfac is not None:
        pd = hdr["pixdim"]
        pd[0] = qfac
        hdr["pixdim"] = pd
    hdr["scl_slope"] = np.nan if slope is None else slope
    hdr["scl_inter"] = np.nan if inter is None else inter
    hdr["descrip"] = descrip
    base = 352 if version == 1 else 544
    offset = base if vox_offset is None else vox_offset
    hdr["vox_offset"] = offset
    buf = io.BytesIO()
    buf.write(hdr.binaryblock)
    buf.write(b"\0" * 4)
    buf.write(b"\xab" * (offset - buf.tell()))
    buf.write(data.astype(data.dtype.newbyteorder(endian)).tobytes(order="F"))
    raw = buf.getvalue()
    path = os.path.join(NIFTI_DIR, name)
    if name.endswith(".gz"):
        with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
            gz.write(raw)
    else:
        with open(path, "wb") as f:
            f.write(raw)
    return path


def finite_or_none(v):
    return float(v) if np.isfinite(v) else None


def dump(obj, path):
    """JSON with one file's entry per line: small, and diffs stay readable."""
    lines = ["{"]
    items = list(obj.items())
    for n, (key, value) in enumerate(items):
        end = "," if n + 1 < len(items) else ""
        if isinstance(value, list):
            lines.append(f" {json.dumps(key)}: [")
            lines += [f"  {json.dumps(v, allow_nan=False)}{',' if i + 1 < len(value) else ''}"
                      for i, v in enumerate(value)]
            lines.append(f" ]{end}")
        else:
            lines.append(f" {json.dumps(key)}: {json.dumps(value)}{end}")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def as_json_numbers(arr):
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.dtype.kind in "iu":
        return [int(v) for v in flat]
    return [float(v) for v in flat]


def expectation(path, extra=None):
    img = nib.load(path)
    hdr = img.header
    # A loaded image's header has its scaling reset; the data proxy keeps what the file said.
    slope, inter = img.dataobj.slope, img.dataobj.inter
    fdata = img.get_fdata(dtype=np.float32)
    raw = np.asanyarray(img.dataobj.get_unscaled())
    out = {
        "file": os.path.basename(path),
        "version": 2 if isinstance(img, nib.Nifti2Image) else 1,
        "shape": [int(s) for s in img.shape],
        "dtype": hdr.get_data_dtype().name,
        "zooms": [float(z) for z in hdr.get_zooms()],
        "affine": [[float(v) for v in row] for row in img.affine],
        "qform_code": int(hdr["qform_code"]),
        "sform_code": int(hdr["sform_code"]),
        "slope": float(slope),
        "inter": float(inter),
        "description": hdr["descrip"].item().decode("latin-1"),
        "fdata": as_json_numbers(fdata),
        "raw": as_json_numbers(raw),
    }
    out.update(extra or {})
    return out


def nifti_cases():
    cases = []

    def case(name, data, **kwargs):
        extra = kwargs.pop("extra", None)
        cases.append(expectation(write_nifti(name, data, **kwargs), extra))

    both = dict(qform=A_PLAIN, qform_code=1, sform=A_PLAIN, sform_code=1)
    case("u8_scaled.nii", data_for(np.uint8, SHAPE, 1), slope=0.5, inter=10.0, descrip=b"uint8, slope 0.5", **both)
    case("i8_slope0.nii", data_for(np.int8, SHAPE, 2), slope=0.0, inter=5.0, **both)
    case("i16_scaled.nii.gz", data_for(np.int16, SHAPE, 3), slope=0.37, inter=-12.3, **both)
    case("u16_scaled.nii", data_for(np.uint16, SHAPE, 4), slope=2.0, inter=0.0, **both)
    case("u16.nii", data_for(np.uint16, SHAPE, 14), **both)
    case("i32_scaled.nii", data_for(np.int32, SHAPE, 5), slope=1.5e-3, inter=7.25, **both)
    case("i32.nii", data_for(np.int32, SHAPE, 15), **both)
    case("i64.nii", data_for(np.int64, SHAPE, 16), slope=1.0, inter=0.0, **both)
    case("f32.nii.gz", data_for(np.float32, SHAPE, 6), slope=1.0, inter=0.0, **both)
    case("f32_scaled.nii", data_for(np.float32, SHAPE, 7), slope=3.3, inter=0.1, **both)
    case("f64_scaled.nii", data_for(np.float64, SHAPE, 8), slope=0.1, inter=-0.7, **both)
    case("f64.nii.gz", data_for(np.float64, SHAPE, 17), **both)
    case("inter_only.nii", data_for(np.int16, SHAPE, 18), slope=1.0, inter=-1024.0, **both)

    # Transforms: the sform wins when its code is set, the qform next, the Analyze base affine last.
    garbage_srow = np.array([[9.0, 8, 7, 6], [5, 4, 3, 2], [1, 2, 3, 4]])
    case("qform_only.nii", data_for(np.int16, SHAPE, 9), qform=A_ROT, qform_code=1, srow=garbage_srow)
    case("sform_only.nii", data_for(np.int16, SHAPE, 10), sform=A_SHEAR, sform_code=2,
         quatern=(0.3, 0.2, 0.1), pixdim=(1.2, 0.8, 3.0))
    case("both_differ.nii.gz", data_for(np.float32, SHAPE, 11), qform=A_ROT, qform_code=1, sform=A_LPS,
         sform_code=4)
    case("no_xform.nii", data_for(np.uint8, SHAPE, 12), pixdim=(2.0, 3.0, 4.0))
    case("bad_sform_code.nii", data_for(np.uint8, SHAPE, 19), qform=A_ROT, qform_code=1, sform=A_LPS,
         sform_code=7)
    case("neg_pixdim.nii", data_for(np.uint8, SHAPE, 20), qform=A_ROT, qform_code=1, pixdim=(-0.9, 1.1, 2.5))
    case("qfac0.nii", data_for(np.uint8, SHAPE, 21), qform=A_LPS, qform_code=2, qfac=0.0)
    case("offset_480.nii", data_for(np.int16, SHAPE, 22), vox_offset=480, **both)
    case("two_d.nii", data_for(np.float32, (6, 5), 23), qform=A_PLAIN, qform_code=1)
    case("big_endian_i16.nii", data_for(np.int16, SHAPE, 24), endian=">", slope=0.25, inter=3.0, qform=A_ROT,
         qform_code=1, sform=A_SHEAR, sform_code=1)
    case("four_d.nii.gz", data_for(np.int16, SHAPE + (3,), 25), slope=0.5, inter=-1.0, **both)
    case("nifti2_f32.nii.gz", data_for(np.float32, SHAPE, 26), version=2, qform=A_ROT, qform_code=1,
         sform=A_SHEAR, sform_code=3)
    case("nifti2_i16_scaled.nii", data_for(np.int16, SHAPE, 27), version=2, slope=0.1, inter=1e-3,
         qform=A_ROT, qform_code=1)
    case("nifti2_4d_big_endian.nii", data_for(np.uint8, SHAPE + (2,), 28), version=2, endian=">",
         qform=A_LPS, qform_code=1, sform=A_LPS, sform_code=1)

    # Read by nibabel, refused by hlip: a 5D image with dim[5] = 2.
    path = write_nifti("five_d.nii", data_for(np.uint8, SHAPE + (1, 2), 29), **both)
    cases.append({"file": os.path.basename(path), "error": "dim[5] is 2"})
    return cases


def nibabel_file_cases():
    cases = []
    for path in sorted(glob.glob(os.path.join(NIBABEL_DATA, "*.nii")) +
                       glob.glob(os.path.join(NIBABEL_DATA, "*.nii.gz"))):
        name = os.path.basename(path)
        img = nib.load(path)
        if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) or type(img) not in (
                nib.Nifti1Image, nib.Nifti2Image):
            img = nib.Nifti2Image.from_filename(path)
        shape = [int(s) for s in img.shape]
        entry = {"file": name, "shape": shape}
        if len(shape) > 4 and any(s != 1 for s in shape[4:]):
            first = next(i for i in range(4, len(shape)) if shape[i] != 1)
            entry["error"] = f"dim[{first + 1}] is {shape[first]}"
            cases.append(entry)
            continue
        data = img.get_fdata(dtype=np.float32)
        volumes = shape[3] if len(shape) >= 4 else 1
        checks = []
        for k in sorted({0, volumes - 1}):
            vol = data[..., k] if len(shape) >= 4 else data
            vol = np.ascontiguousarray(vol.reshape(vol.shape[:3]))
            checks.append({"volume": k, "fnv1a64": fnv1a64(vol.astype("<f4").tobytes()),
                           "sum": finite_or_none(vol.astype(np.float64).sum())})
        entry.update({
            "affine": [[float(v) for v in row] for row in img.affine],
            "zooms": [float(z) for z in img.header.get_zooms()],
            "dtype": img.header.get_data_dtype().name,
            "volumes": checks,
        })
        cases.append(entry)
    return cases


def npy_cases():
    cases = []
    rng = np.random.default_rng(7)

    def case(name, arr, version=None, extra=None):
        path = os.path.join(NPY_DIR, name)
        with open(path, "wb") as f:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=False)
        back = np.load(path)
        entry = {"file": name, "shape": [int(s) for s in back.shape], "descr": back.dtype.str,
                 "fortran_order": bool(np.isfortran(back) and back.ndim > 1),
                 "values": as_json_numbers(back.astype(np.float64) if back.dtype == np.bool_ else back)}
        entry.update(extra or {})
        cases.append(entry)

    case("u8.npy", rng.integers(0, 255, size=(4, 3, 2), endpoint=True, dtype=np.uint8))
    case("i16.npy", data_for(np.int16, (3, 4, 5), 31))
    case("f32.npy", data_for(np.float32, (3, 4, 5), 32))
    case("f64.npy", data_for(np.float64, (2, 3, 4), 33))
    case("i32.npy", data_for(np.int32, (2, 3, 4), 34))
    case("u16.npy", data_for(np.uint16, (2, 3, 4), 35))
    case("i64.npy", data_for(np.int64, (7,), 36))
    case("bool.npy", rng.random((3, 2)) > 0.5)
    case("f16.npy", data_for(np.float16, (2, 5), 37))
    case("f32_fortran.npy", np.asfortranarray(data_for(np.float32, (3, 4, 5), 38)))
    case("f32_v2.npy", data_for(np.float32, (2, 3, 4), 39), version=(2, 0))
    case("u8_v3.npy", data_for(np.uint8, (2, 3, 4), 40), version=(3, 0))
    case("scalar.npy", np.array(3.5, dtype=np.float32))
    case("empty.npy", np.zeros((0, 3), dtype=np.float32))
    case("f32_4d.npy", data_for(np.float32, (3, 4, 2, 3), 41))

    # Refused by hlip, each with the field and value its error must name.
    def bad(name, arr, needle, allow_pickle=False):
        with open(os.path.join(NPY_DIR, name), "wb") as f:
            np.lib.format.write_array(f, arr, allow_pickle=allow_pickle)
        cases.append({"file": name, "error": needle})

    bad("big_endian.npy", np.arange(6, dtype=">f4").reshape(2, 3), "descr '>f4'")
    bad("structured.npy", np.zeros(3, dtype=[("x", "<f4"), ("y", "<i2")]), "descr is [(")
    bad("object.npy", np.array([1, "a"], dtype=object), "descr '|O'", allow_pickle=True)
    bad("complex.npy", np.zeros(2, dtype=np.complex64), "descr '<c8'")
    return cases


def main():
    os.makedirs(NIFTI_DIR, exist_ok=True)
    os.makedirs(NPY_DIR, exist_ok=True)
    for d in (NIFTI_DIR, NPY_DIR):
        for old in glob.glob(os.path.join(d, "*")):
            os.remove(old)
    nifti = {"generator": "tests/ref/make_nifti_ref.py", "nibabel": nib.__version__, "numpy": np.__version__,
             "files": nifti_cases(), "nibabel_data": nibabel_file_cases()}
    dump(nifti, os.path.join(NIFTI_DIR, "expected.json"))
    npy = {"generator": "tests/ref/make_nifti_ref.py", "numpy": np.__version__, "files": npy_cases()}
    dump(npy, os.path.join(NPY_DIR, "expected.json"))


if __name__ == "__main__":
    main()
