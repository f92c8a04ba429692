#!/usr/bin/python3
"""Python baseline for bench/bench_preprocess.cpp: the same work with nibabel + numpy + scipy.ndimage.

A 256×256×160 int16-valued brain MRI (float32 voxels, LPS affine, 0.9375 × 0.9375 × 1.2 mm) in memory goes
to 48×224×224 the way HLIP prepares Pub-Brain-5 scans: closest canonical (nibabel), HLIP's RPI [z, y, x]
axes, 0.5–99.5 % percentile clip and min-max (numpy), then the evaluation loader's geometry with
scipy.ndimage in place of torch: pad to square, bilinear (order-1 zoom, half-pixel grid) to 256², nearest-exact
depth to 48, centre crop 224.

Two variants: "hlip-order" follows HLIP (intensity and in-plane resize on every slice, then pick 48);
"slices-first" picks the 48 slices first (what hlip's C++ chain does). Both give exactly the values of
preprocess_volume with the mri-brain preset on the same input (checked when this script was written).

Run single-threaded: /usr/bin/python3 bench/baseline_preprocess.py [--repeats N]
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import scipy.ndimage as ndi  # noqa: E402


def mri_image():
    """Same construction as bench_preprocess.cpp's volume (same shape, values distribution and affine)."""
    rng = np.random.default_rng(0)
    ni, nj, nk = 256, 256, 160
    i = np.linspace(-1, 1, ni)[:, None, None]
    j = np.linspace(-1, 1, nj)[None, :, None]
    k = np.linspace(-1, 1, nk)[None, None, :]
    r = (i / 0.8) ** 2 + (j / 0.9) ** 2 + (k / 0.85) ** 2
    values = np.where(r < 1, 600 + 400 * np.cos(6 * r), 0.0)
    values = np.clip(values + 40 * rng.standard_normal((ni, nj, nk)) * (r < 1), 0, None).round().astype(np.int16)
    affine = np.diag([-0.9375, -0.9375, 1.2, 1.0])
    data = np.asfortranarray(values.astype(np.float32))  # the reader's layout
    return nib.Nifti1Image(data, affine)


def nearest_exact(n_in, n_out):
    """torch's mode="nearest-exact" source indices (float32 scale, double product, rounded to float32)."""
    scale = np.float32(np.float32(n_in) / np.float32(n_out))
    position = ((np.arange(n_out) + 0.5) * np.float64(scale)).astype(np.float32)
    return np.minimum(np.floor(position).astype(np.int64), n_in - 1)


def hlip_axes(img):
    can = nib.as_closest_canonical(img)
    arr = np.asarray(can.dataobj)                  # [i, j, k] = R, A, S
    zooms = np.array(can.header.get_zooms()[:3])
    arr = arr[:, ::-1, ::-1].transpose(2, 1, 0)    # RPI as [z, y, x]
    side = int(np.argmax(zooms[::-1]))
    if side == 1:
        arr = arr.transpose(1, 0, 2)
    elif side == 2:
        arr = arr.transpose(2, 0, 1)
    return arr


def clip_by_percentile(img, lo, hi):
    lower, upper = np.percentile(img, [lo, hi])
    img = np.clip(img, lower, upper)
    return (img - lower) / (upper - lower + 1e-8)


def loader_geometry(img, depth=48, resize=256, crop=224, pick_first=False):
    if pick_first:
        img = img[nearest_exact(img.shape[0], depth)]
    _, h, w = img.shape
    size = max(h, w)
    top, left = (size - h) // 2, (size - w) // 2
    img = np.pad(img, ((0, 0), (top, size - h - top), (left, size - w - left)))
    img = ndi.zoom(img, (1, resize / size, resize / size), order=1, mode="nearest", grid_mode=True)
    if not pick_first:
        img = img[nearest_exact(img.shape[0], depth)]
    start = (resize - crop) // 2
    return np.ascontiguousarray(img[:, start:start + crop, start:start + crop], dtype=np.float32)


def preprocess(img, slices_first):
    arr = hlip_axes(img)
    if slices_first:
        lower, upper = np.percentile(arr, [0.5, 99.5])
        picked = arr[nearest_exact(arr.shape[0], 48)]
        scaled = (np.clip(picked, lower, upper) - lower) / (upper - lower + 1e-8)
        return loader_geometry(scaled, pick_first=False)
    return loader_geometry(clip_by_percentile(arr, 0.5, 99.5))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    img = mri_image()
    for name, slices_first in (("hlip-order", False), ("slices-first", True)):
        out = preprocess(img, slices_first)  # warm-up
        assert out.shape == (48, 224, 224), out.shape
        wall, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            preprocess(img, slices_first)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        # CPU time is the per-core cost even when other processes share the machine (as Google Benchmark's
        # "CPU" column for bench_preprocess).
        median_wall, median_cpu = float(np.median(wall)), float(np.median(cpu))
        print(f"{name:13s} median wall {median_wall * 1e3:8.1f} ms  cpu {median_cpu * 1e3:8.1f} ms  "
              f"{1.0 / median_cpu:6.2f} scans/s per core ({args.repeats} runs)")


if __name__ == "__main__":
    main()
