#!/usr/bin/python3
"""Reference data for hlip's preprocessing (tests/unit/preprocess), from nibabel, scipy, numpy and torch.

Writes tests/data/preprocess/reference.json (orientations, shapes, affines, percentiles, checksums) and
tests/data/preprocess/reference.safetensors (small float32 arrays: inputs and expected outputs).

* Orientation: nibabel's as_closest_canonical and aff2axcodes for synthetic oblique/flipped/permuted affines
  and for the NIfTI files in tests/data/nifti and Debian's nibabel test data; HLIP's axis order the way
  HLIP's Pub-Brain-5 process.py builds it (reorient to RPI, array [z, y, x], transpose2dhw), with nibabel
  doing the RPI reorientation.
* Resampling: scipy.ndimage.zoom (order 1 and 0, grid_mode True and False, mode "nearest") and torch's
  F.interpolate (trilinear, bilinear, nearest-exact).
* HLIP's loaders verbatim (Pub-Brain-5 eval loader, CT-RATE crop loader, CT-RATE 2026 resize) on small scans.
* Intensity: numpy.percentile, HLIP's clip_by_percentile, CT windows as torch computes them.
* Whole chain: small volumes through HLIP's own steps, for preprocess_volume.

Run with Debian's interpreter: /usr/bin/python3 tests/ref/make_preprocess_ref.py
"""

import glob
import json
import math
import os
import struct

import nibabel as nib
import numpy as np
import scipy
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F
from nibabel.orientations import aff2axcodes, axcodes2ornt, io_orientation, ornt_transform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "data", "preprocess")
NIFTI_DIR = os.path.join(ROOT, "data", "nifti")
NIBABEL_DATA = os.path.join(os.path.dirname(nib.__file__), "tests", "data")

tensors = {}


def put(name, array):
    tensors[name] = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    return name


def write_safetensors(path, arrays):
    header, offset, blobs = {}, 0, []
    for name in sorted(arrays):
        data = arrays[name].astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(arrays[name].shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def fnv1a64(array):
    h = 0xCBF29CE484222325
    for b in np.ascontiguousarray(array, dtype="<f4").tobytes():
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


# ---------------------------------------------------------------- orientation


def rotation(axis, degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r


def make_affine(direction, zooms, offset):
    a = np.eye(4)
    a[:3, :3] = direction @ np.diag(zooms)
    a[:3, 3] = offset
    return a


def transpose2dhw(img_arr, spacing_sitk):
    """HLIP's Pub-Brain-5 process.py transpose2dhw (argmax: ties go to z, then y)."""
    spacing_array = spacing_sitk[::-1]
    side = np.argmax(spacing_array)
    if side == 0:
        return img_arr, [spacing_array[0], spacing_array[1], spacing_array[2]]
    if side == 1:
        return np.transpose(img_arr, (1, 0, 2)), [spacing_array[1], spacing_array[0], spacing_array[2]]
    return np.transpose(img_arr, (2, 0, 1)), [spacing_array[2], spacing_array[0], spacing_array[1]]


def hlip_axes(data, affine, zooms):
    """HLIP's scan layout: reorient to RPI (here with nibabel), [z, y, x], transpose2dhw."""
    ornt = ornt_transform(io_orientation(affine), axcodes2ornt(("R", "P", "I")))
    img = nib.Nifti1Image(data, affine)
    arr = np.asarray(img.as_reoriented(ornt).dataobj)
    xyz_zooms = [0.0, 0.0, 0.0]
    for in_ax in range(3):
        xyz_zooms[int(ornt[in_ax, 0])] = float(zooms[in_ax])
    return transpose2dhw(arr.transpose(2, 1, 0), np.array(xyz_zooms))


def canonical_entry(data, affine, zooms):
    img = nib.Nifti1Image(data, affine)
    can = nib.as_closest_canonical(img)
    ornt = io_orientation(affine)
    can_zooms = [0.0, 0.0, 0.0]
    for in_ax in range(3):
        can_zooms[int(ornt[in_ax, 0])] = float(zooms[in_ax])
    hl, hl_spacing = hlip_axes(data, affine, zooms)
    return {
        "codes": "".join(aff2axcodes(affine)),
        "canonical_codes": "".join(aff2axcodes(can.affine)),
        "canonical_shape": list(can.shape),
        "canonical_affine": can.affine.tolist(),
        "canonical_spacing": can_zooms,
        "canonical_data": np.asarray(can.dataobj, dtype=np.float32),
        "hlip_shape": list(hl.shape),
        "hlip_spacing": [float(s) for s in hl_spacing],
        "hlip_data": np.asarray(hl, dtype=np.float32),
    }


def synthetic_orientation_cases():
    cases = []
    perms = {"ijk": [0, 1, 2], "jki": [1, 2, 0], "kij": [2, 0, 1], "ikj": [0, 2, 1]}
    # Signed permutations with anisotropic spacings that make each canonical axis the depth axis.
    zoom_choices = ([0.9, 0.8, 3.0], [1.0, 4.0, 1.2], [5.0, 0.7, 0.7])
    for p_index, (pname, perm) in enumerate(perms.items()):
        for s_index, signs in enumerate(([1, 1, 1], [-1, -1, 1], [1, -1, -1], [-1, 1, -1])):
            for zooms in (zoom_choices if p_index + s_index == 0 else [zoom_choices[(p_index + s_index) % 3]]):
                p = np.zeros((3, 3))
                for in_ax, out_ax in enumerate(perm):
                    p[out_ax, in_ax] = signs[out_ax]
                name = f"perm_{pname}_{''.join('+' if s > 0 else '-' for s in signs)}_{zooms[0]}_{zooms[1]}_{zooms[2]}"
                cases.append((name, (4, 3, 5), zooms, make_affine(p, zooms, [10.0, -20.0, 5.5])))
    # Oblique grids, a left-handed one, a shear, near-45° rotations, exact spacing ties.
    cases += [
        ("oblique_30z_10x", (5, 4, 3), [0.9, 1.1, 2.5], make_affine(rotation(2, 30) @ rotation(0, 10), [0.9, 1.1, -2.5], [-40.5, 20.25, 11.0])),
        ("oblique_44y", (3, 5, 4), [1.0, 2.0, 1.5], make_affine(rotation(1, 44), [1.0, 2.0, 1.5], [1.0, 2.0, 3.0])),
        ("oblique_46y", (3, 5, 4), [1.0, 2.0, 1.5], make_affine(rotation(1, 46), [1.0, 2.0, 1.5], [1.0, 2.0, 3.0])),
        ("oblique_60x_120z", (4, 4, 3), [0.5, 0.5, 4.0], make_affine(rotation(0, 60) @ rotation(2, 120), [0.5, -0.5, 4.0], [0.0, 0.0, 0.0])),
        ("oblique_coronal_tilt", (6, 2, 5), [0.8, 6.0, 0.8], make_affine(rotation(0, 80) @ rotation(1, 15), [0.8, 6.0, 0.8], [3.0, -1.0, 2.0])),
        ("shear", (5, 4, 3), [1.2, 0.8, 3.0], np.array([[1.2, 0.3, 0.0, -10.0], [0.0, 0.8, 0.1, 5.5], [0.05, 0.0, 3.0, 2.0], [0, 0, 0, 1]])),
        ("tie_isotropic_lps", (3, 4, 5), [1.0, 1.0, 1.0], make_affine(np.diag([-1.0, -1.0, 1.0]), [1.0, 1.0, 1.0], [0, 0, 0])),
        ("tie_ij_sagittal_stack", (4, 5, 3), [2.0, 2.0, 1.0], make_affine(np.eye(3), [2.0, 2.0, 1.0], [0, 0, 0])),
        ("tie_jk_coronal", (5, 3, 4), [0.5, 3.0, 3.0], make_affine(np.diag([1.0, -1.0, -1.0]), [0.5, 3.0, 3.0], [0, 0, 0])),
    ]
    # Random rotations (fixed seed), some of which nibabel's canonical result does not read as "RAS".
    rng = np.random.default_rng(7)
    for n in range(6):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        w, x, y, z = q
        rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
        zooms = list(np.round(rng.uniform(0.5, 3.0, 3), 2))
        signs = rng.choice([-1.0, 1.0], 3)
        cases.append((f"random_rotation_{n}", (3, 4, 5), zooms, make_affine(rot, np.array(zooms) * signs, rng.normal(size=3) * 50)))
    return cases


def corners(array):
    """Voxels [0,0,0], [-1,0,0], [0,-1,0], [0,0,-1]: with linear-index data they pin the axis mapping down."""
    return [float(array[0, 0, 0]), float(array[-1, 0, 0]), float(array[0, -1, 0]), float(array[0, 0, -1])]


def orientation_reference():
    synthetic = []
    for name, shape, zooms, affine in synthetic_orientation_cases():
        # Voxel (i, j, k) holds its Fortran linear index i + I·(j + J·k); the test rebuilds it the same way.
        data = np.arange(np.prod(shape), dtype=np.float32).reshape(shape, order="F")
        e = canonical_entry(data, affine, zooms)
        synthetic.append({
            "name": name, "shape": list(shape), "spacing": [float(z) for z in zooms], "affine": affine.tolist(),
            "codes": e["codes"], "canonical_codes": e["canonical_codes"], "canonical_shape": e["canonical_shape"],
            "canonical_affine": e["canonical_affine"], "canonical_spacing": e["canonical_spacing"],
            "canonical_corners": corners(e["canonical_data"]), "canonical_fnv1a64": fnv1a64(e["canonical_data"]),
            "hlip_shape": e["hlip_shape"], "hlip_spacing": e["hlip_spacing"],
            "hlip_corners": corners(e["hlip_data"]), "hlip_fnv1a64": fnv1a64(e["hlip_data"]),
        })
    return synthetic


def file_reference(path, display):
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float32)
    zooms = list(img.header.get_zooms())
    if data.ndim < 3:
        data = data.reshape(data.shape + (1,) * (3 - data.ndim))
    while data.ndim > 3:
        data = data[..., 0]
    zooms = [float(z) for z in (zooms + [1.0] * 3)[:3]]
    e = canonical_entry(data, img.affine, zooms)
    return {
        "file": display, "codes": e["codes"], "canonical_shape": e["canonical_shape"],
        "canonical_affine": e["canonical_affine"], "canonical_spacing": e["canonical_spacing"],
        "canonical_fnv1a64": fnv1a64(e["canonical_data"]), "hlip_shape": e["hlip_shape"],
        "hlip_spacing": e["hlip_spacing"], "hlip_fnv1a64": fnv1a64(e["hlip_data"]),
    }


def files_reference():
    files, nibabel_files = [], []
    with open(os.path.join(NIFTI_DIR, "expected.json")) as f:
        nifti_expected = json.load(f)
    for entry in nifti_expected["files"]:
        if "error" in entry:
            continue
        files.append(file_reference(os.path.join(NIFTI_DIR, entry["file"]), entry["file"]))
    for path in sorted(glob.glob(os.path.join(NIBABEL_DATA, "*.nii")) + glob.glob(os.path.join(NIBABEL_DATA, "*.nii.gz"))):
        img = nib.load(path)
        if len(img.shape) > 4 or not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
            continue  # CIFTI and friends: not scans
        nibabel_files.append(file_reference(path, os.path.basename(path)))
    return files, nibabel_files


# ---------------------------------------------------------------- resampling


def resample_reference():
    rng = np.random.default_rng(11)
    image = (rng.random((5, 7, 9)) * 100).astype(np.float32)
    labels = rng.integers(0, 6, size=(5, 7, 9)).astype(np.float32)
    put("resample/image", image)
    put("resample/labels", labels)
    cases = []
    for size in ([7, 5, 11], [3, 11, 4], [1, 2, 17]):
        for grid_mode in (True, False):
            for order in (1, 0):
                src = image if order == 1 else labels
                zoom = [o / i for o, i in zip(size, src.shape)]
                out = ndi.zoom(src, zoom, order=order, mode="nearest", grid_mode=grid_mode)
                assert list(out.shape) == size
                name = f"resample/zoom_{'x'.join(map(str, size))}_{'half' if grid_mode else 'corners'}_order{order}"
                cases.append({"size": size, "grid_mode": grid_mode, "order": order, "expected": put(name, out)})
    # torch trilinear: the library HLIP's CT-RATE script calls.
    torch_cases = []
    for size, align in (([7, 5, 11], False), ([3, 11, 4], True)):
            out = F.interpolate(torch.from_numpy(image)[None, None], size=size, mode="trilinear", align_corners=align)[0, 0]
            torch_cases.append({"size": size, "align_corners": align,
                                "expected": put(f"resample/torch_trilinear_{'x'.join(map(str, size))}_{int(align)}", out.numpy())})
    # CT-RATE's process.py: target size int(n * spacing / target).
    spacing, target = [2.5, 0.8, 1.1], [1.5, 1.0, 1.0]
    target_size = [int(n * s / t) for n, s, t in zip(image.shape, spacing, target)]
    spacing_case = {
        "spacing": spacing, "target": target, "size": target_size,
        "expected": put("resample/ct_rate_spacing",
                        F.interpolate(torch.from_numpy(image)[None, None], size=target_size, mode="trilinear")[0, 0].numpy()),
        "scipy": put("resample/ct_rate_spacing_scipy",
                     ndi.zoom(image, [o / i for o, i in zip(target_size, image.shape)], order=1, mode="nearest", grid_mode=True)),
    }
    # Sizes whose float product rounds differently in other evaluation orders.
    sizes = [[n, s, t, int(n * s / t)] for n, s, t in [(100, 0.7, 0.7), (512, 0.683594, 1.0), (301, 1.25, 3.0),
                                                       (64, 0.1, 0.3), (33, 2.2, 1.1), (7, 0.3, 0.1)]]
    return {"zoom": cases, "torch_trilinear": torch_cases, "to_spacing": spacing_case, "resampled_sizes": sizes}


def nearest_exact_reference():
    out = []
    for n_in, n_out in [(160, 48), (48, 160), (7, 3), (100, 48), (33, 48), (1, 5), (5, 1), (240, 48), (155, 48),
                        (47, 48), (49, 48), (17, 13), (1000, 48), (96, 48)]:
        idx = F.interpolate(torch.arange(n_in, dtype=torch.float32)[None, None, :, None, None],
                            size=(n_out, 1, 1), mode="nearest-exact")[0, 0, :, 0, 0]
        out.append({"input": n_in, "output": n_out, "indices": [int(v) for v in idx.tolist()]})
    return out


def hlip_eval_loader(img, resize, depth, crop):
    """HLIP's Pub-Brain-5 eval loader (zeroshot_pubbrain5.py), sizes as parameters."""
    _, h, w = img.shape
    size = max(h, w)
    pad_h = size - h
    pad_w = size - w
    left = pad_w // 2; right = pad_w - left; top = pad_h // 2; bottom = pad_h - top
    img = F.pad(img, (left, right, top, bottom), mode="constant", value=0)
    img = F.interpolate(img[None, ...], size=(resize, resize), mode="bilinear")[0]
    img = F.interpolate(img[None, None, ...], size=(depth, resize, resize), mode="nearest-exact")[0, 0]
    start = (resize - crop) // 2
    return img[:, start:start + crop, start:start + crop]


def hlip_trilinear_resize(img, resize, depth, crop):
    """The "resize" geometry: HLIP's pad to square, then one trilinear resize, then the centre crop."""
    _, h, w = img.shape
    size = max(h, w)
    pad_h = size - h
    pad_w = size - w
    left = pad_w // 2; right = pad_w - left; top = pad_h // 2; bottom = pad_h - top
    img = F.pad(img, (left, right, top, bottom), mode="constant", value=0)
    img = F.interpolate(img[None, None], size=(depth, resize, resize), mode="trilinear")[0, 0]
    start = (resize - crop) // 2
    return img[:, start:start + crop, start:start + crop]


def ct_rate_crop(img, d_out, h_out, w_out):
    """HLIP's CT-RATE "crop" loader (data_ct_rate.py), sizes as parameters."""
    img = img[None, ...]
    _, d, h, w = img.shape
    pad_d = max(d_out - d, 0); pad_h = max(h_out - h, 0); pad_w = max(w_out - w, 0)
    pad_d1, pad_d2 = pad_d // 2, pad_d - pad_d // 2
    pad_h1, pad_h2 = pad_h // 2, pad_h - pad_h // 2
    pad_w1, pad_w2 = pad_w // 2, pad_w - pad_w // 2
    img = F.pad(img[None, ...], (pad_w1, pad_w2, pad_h1, pad_h2, pad_d1, pad_d2), mode="constant", value=0).squeeze(0)
    _, d, h, w = img.shape
    sd, sh, sw = (d - d_out) // 2, (h - h_out) // 2, (w - w_out) // 2
    return img[0, sd:sd + d_out, sh:sh + h_out, sw:sw + w_out]


def loader_reference():
    rng = np.random.default_rng(5)
    out = []
    for shape, depth, resize, crop in [((6, 9, 8), 4, 10, 8), ((5, 7, 9), 5, 10, 8), ((4, 6, 6), 4, 6, 6)]:
        scan = rng.random(shape).astype(np.float32)
        name = "x".join(map(str, shape))
        t = torch.from_numpy(scan)
        out.append({"input": put(f"loader/{name}/input", scan), "depth": depth, "resize": resize, "crop": crop,
                    "eval": put(f"loader/{name}/eval", hlip_eval_loader(t, resize, depth, crop).numpy()),
                    "trilinear": put(f"loader/{name}/trilinear", hlip_trilinear_resize(t, resize, depth, crop).numpy())})
    crops = []
    for shape, size in [((5, 6, 8), (4, 8, 5)), ((3, 4, 5), (5, 6, 7)), ((6, 7, 3), (5, 4, 6))]:
        scan = rng.random(shape).astype(np.float32)
        name = "x".join(map(str, shape)) + "_to_" + "x".join(map(str, size))
        crops.append({"input": put(f"crop/{name}/input", scan), "size": list(size),
                      "expected": put(f"crop/{name}/expected", ct_rate_crop(torch.from_numpy(scan), *size).numpy())})
    bilinear = []
    for shape, size in [((2, 9, 7), (12, 12)), ((2, 9, 12), (5, 4))]:
        scan = rng.random(shape).astype(np.float32)
        name = "x".join(map(str, shape)) + "_to_" + "x".join(map(str, size))
        bilinear.append({"input": put(f"bilinear/{name}/input", scan), "size": list(size),
                         "expected": put(f"bilinear/{name}/expected",
                                         F.interpolate(torch.from_numpy(scan)[None], size=size, mode="bilinear")[0].numpy())})
    return {"square": out, "crop": crops, "bilinear": bilinear}


# ---------------------------------------------------------------- intensity


def clip_by_percentile(img, lo, hi):
    """HLIP's clip_by_percentile (Pub-Brain-5 process.py)."""
    lower = np.percentile(img, lo)
    upper = np.percentile(img, hi)
    img = np.clip(img, lower, upper)
    img = (img - img.min()) / (img.max() - img.min() + 1e-8)
    return img


def intensity_reference():
    rng = np.random.default_rng(3)
    arrays = {
        "normal": rng.normal(100, 40, size=301).astype(np.float32),
        "ties": rng.integers(0, 6, size=200).astype(np.float32),
        "background": np.concatenate([np.zeros(280), rng.integers(1, 300, size=120)]).astype(np.float32),
        "wide": np.concatenate([rng.normal(0, 1, 200), rng.normal(1e4, 1, 5)]).astype(np.float32),
        "single": np.array([4.25], dtype=np.float32),
        "constant": np.full(50, 7.0, dtype=np.float32),
    }
    qs = [0, 0.5, 1, 12.5, 25, 33.3, 50, 66.7, 99, 99.5, 100]
    percentiles = []
    for name, values in arrays.items():
        percentiles.append({"values": put(f"intensity/{name}", values), "q": qs,
                            "expected": [float(v) for v in np.percentile(values.astype(np.float64), qs)],
                            "normalized": put(f"intensity/{name}/normalized",
                                              clip_by_percentile(values.astype(np.float64), 0.5, 99.5).astype(np.float32))})
    hu = np.concatenate([np.linspace(-1200, 3100, 87), [-1150.0, 350.0, 0.0, 80.0, -20.0, 180.0, 2000.0]]).astype(np.float32)
    windows = []
    for name, lo, hi in [("ct-rate", -1150.0, 350.0), ("brain", 0.0, 80.0), ("subdural", -20.0, 180.0), ("bone", -800.0, 2000.0)]:
        t = torch.from_numpy(hu)
        windows.append({"name": name, "min_hu": lo, "max_hu": hi,
                        "expected": put(f"window/{name}", torch.clip((t.float() - lo) / (hi - lo), 0.0, 1.0).numpy())})
    put("window/hu", hu)
    return {"percentiles": percentiles, "windows": windows}


# ---------------------------------------------------------------- whole chain


def chain_reference():
    rng = np.random.default_rng(21)
    out = []
    # MRI: an LPS scan with thick axial slices; HLIP's process.py steps, then its eval loader.
    shape = (10, 8, 6)
    affine = make_affine(np.diag([-1.0, -1.0, 1.0]), [0.9, 0.95, 2.0], [60.0, 70.0, -20.0])
    data = (rng.gamma(2.0, 150.0, size=shape) * (rng.random(shape) > 0.3)).round().astype(np.float32)
    hl, _ = hlip_axes(data, affine, [0.9, 0.95, 2.0])
    normalized = clip_by_percentile(hl.astype(np.float64), 0.5, 99.5).astype(np.float32)
    expected = hlip_eval_loader(torch.from_numpy(normalized), 12, 4, 10).numpy()
    out.append({"name": "mri_eval", "shape": list(shape), "spacing": [0.9, 0.95, 2.0], "affine": affine.tolist(),
                "data": put("chain/mri_eval/data", data), "expected": [put("chain/mri_eval/expected", expected)],
                "preset": {"modality": "mri", "geometry": "eval", "output_size": [4, 10, 10], "resize_size": 12}})
    # CT chest: a sagittal-stacked oblique scan; CT-RATE's resampling (torch trilinear), window, crop loader.
    shape = (5, 8, 7)
    zooms = [3.0, 0.8, 0.9]
    affine = make_affine(rotation(2, 8) @ np.array([[0, 0, 1.0], [0, -1.0, 0], [1.0, 0, 0]]), zooms, [5.0, 6.0, 7.0])
    data = rng.normal(-300, 500, size=shape).astype(np.float32)
    hl, hl_spacing = hlip_axes(data, affine, zooms)
    target = [2.0, 1.0, 1.0]
    size = [int(n * s / t) for n, s, t in zip(hl.shape, hl_spacing, target)]
    resampled = F.interpolate(torch.from_numpy(np.ascontiguousarray(hl))[None, None].float(), size=size, mode="trilinear")[0, 0]
    windowed = torch.clip((resampled.float() - (-1150.0)) / (350.0 - (-1150.0)), 0.0, 1.0)
    expected = ct_rate_crop(windowed, 9, 6, 9).numpy()
    out.append({"name": "ct_chest_crop", "shape": list(shape), "spacing": zooms, "affine": affine.tolist(),
                "data": put("chain/ct_chest_crop/data", data), "expected": [put("chain/ct_chest_crop/expected", expected)],
                "preset": {"modality": "ct", "geometry": "crop", "output_size": [9, 6, 9], "target_spacing_mm": target,
                           "windows": [{"name": "ct-rate", "min_hu": -1150.0, "max_hu": 350.0}]}})
    # CT head, two windows: one scan each, eval geometry.
    shape = (8, 7, 5)
    zooms = [0.5, 0.45, 5.0]
    affine = make_affine(np.eye(3), zooms, [0.0, 0.0, 0.0])
    data = rng.normal(40, 300, size=shape).astype(np.float32)
    hl, _ = hlip_axes(data, affine, zooms)
    expected = []
    windows = [("brain", 0.0, 80.0), ("bone", -800.0, 2000.0)]
    for name, lo, hi in windows:
        w = torch.clip((torch.from_numpy(np.ascontiguousarray(hl)).float() - lo) / (hi - lo), 0.0, 1.0)
        expected.append(put(f"chain/ct_head_eval/{name}", hlip_eval_loader(w, 10, 3, 8).numpy()))
    out.append({"name": "ct_head_eval", "shape": list(shape), "spacing": zooms, "affine": affine.tolist(),
                "data": put("chain/ct_head_eval/data", data), "expected": expected, "suffixes": [w[0] for w in windows],
                "preset": {"modality": "ct", "geometry": "eval", "output_size": [3, 8, 8], "resize_size": 10,
                           "windows": [{"name": n, "min_hu": lo, "max_hu": hi} for n, lo, hi in windows]}})
    return out


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    files, nibabel_files = files_reference()
    doc = {
        "generator": "tests/ref/make_preprocess_ref.py",
        "versions": {"nibabel": nib.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
                     "torch": torch.__version__.split("+")[0]},
        "orientation": orientation_reference(),
        "files": files,
        "nibabel_data": nibabel_files,
        "resample": resample_reference(),
        "nearest_exact": nearest_exact_reference(),
        "loaders": loader_reference(),
        "intensity": intensity_reference(),
        "chain": chain_reference(),
    }
    with open(os.path.join(OUT_DIR, "reference.json"), "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    write_safetensors(os.path.join(OUT_DIR, "reference.safetensors"), tensors)
    sizes = {n: os.path.getsize(os.path.join(OUT_DIR, n)) for n in ("reference.json", "reference.safetensors")}
    print(f"wrote {OUT_DIR}: {sizes}, {len(tensors)} arrays")


if __name__ == "__main__":
    main()
