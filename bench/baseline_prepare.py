#!/usr/bin/python3
"""Python baseline for `hlip prepare` (bench/bench_prepare.sh): the same work, from .nii.gz files to a cache.

--make DIR writes the benchmark's input: N copies of the 256×256×160 int16 brain MRI of baseline_preprocess.py
as gzip NIfTI files (nibabel), and a manifest (DIR/studies.jsonl) listing them as "mri" studies.
--run DIR then prepares every scan of the manifest in one process, as HLIP's Python would: nibabel load
(gzip inflate, get_fdata as float32), closest canonical, HLIP's axes, 0.5–99.5 % percentile clip, the
evaluation loader's geometry with scipy.ndimage (baseline_preprocess.py), round(255·x) as uint8, np.save,
a JSON sidecar with the source's CRC-32. Both HLIP's order and "slices first" are timed; the output equals
hlip's cache voxel for voxel (bench_prepare.sh checks one scan).

Run single-threaded: /usr/bin/python3 bench/baseline_prepare.py --make DIR --scans 32; ... --run DIR --out OUT
"""

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baseline_preprocess as bp  # noqa: E402


def make(folder, scans):
    os.makedirs(os.path.join(folder, "nifti"), exist_ok=True)
    image = bp.mri_image()
    stored = nib.Nifti1Image(np.asarray(image.dataobj).astype(np.int16), image.affine)
    stored.set_data_dtype(np.int16)
    first = os.path.join(folder, "nifti", "t1_0.nii.gz")
    nib.save(stored, first)
    with open(os.path.join(folder, "studies.jsonl"), "w") as manifest:
        for i in range(scans):
            path = f"nifti/t1_{i}.nii.gz"
            if i:
                shutil.copyfile(first, os.path.join(folder, path))
            manifest.write(json.dumps({"study": f"s{i}", "modality": "mri", "split": "train",
                                       "scans": [{"path": path, "name": "T1"}], "report": "none"}) + "\n")


def prepare(folder, out, slices_first):
    with open(os.path.join(folder, "studies.jsonl")) as manifest:
        studies = [json.loads(line) for line in manifest]
    start, start_cpu = time.perf_counter(), time.process_time()
    for study in studies:
        for scan in study["scans"]:
            path = os.path.join(folder, scan["path"])
            with open(path, "rb") as f:
                checksum = zlib.crc32(f.read())
            loaded = nib.load(path)
            image = nib.Nifti1Image(loaded.get_fdata(dtype=np.float32), loaded.affine)
            unit = bp.preprocess(image, slices_first)
            target = os.path.join(out, study["study"])
            os.makedirs(target, exist_ok=True)
            np.save(os.path.join(target, scan["name"] + ".npy"), np.round(unit * 255).astype(np.uint8))
            with open(os.path.join(target, scan["name"] + ".json"), "w") as sidecar:
                json.dump({"source": path, "checksum": f"crc32:{checksum:08x}", "shape": list(unit.shape)}, sidecar)
    count = sum(len(s["scans"]) for s in studies)
    return (time.perf_counter() - start) / count, (time.process_time() - start_cpu) / count, count


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--make", metavar="DIR")
    parser.add_argument("--scans", type=int, default=32)
    parser.add_argument("--run", metavar="DIR")
    parser.add_argument("--out", metavar="OUT", help="where the Python cache goes (default DIR/python-cache)")
    args = parser.parse_args()
    if args.make:
        make(args.make, args.scans)
    if args.run:
        out = args.out or os.path.join(args.run, "python-cache")
        for name, slices_first in (("hlip-order", False), ("slices-first", True)):
            wall, cpu, count = prepare(args.run, out, slices_first)
            print(f"python {name:12s} {count} scans: wall {wall * 1e3:7.1f} ms/scan  cpu {cpu * 1e3:7.1f} ms/scan  "
                  f"{1.0 / cpu:6.2f} scans/s per core")


if __name__ == "__main__":
    main()
