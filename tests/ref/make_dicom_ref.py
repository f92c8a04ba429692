#!/usr/bin/python3
"""Geometry reference for hlip's DICOM series reader, from nibabel's DICOM wrapper.

Writes tests/data/dicom/expected.json: an oblique slice stack (ImageOrientationPatient, PixelSpacing and each
slice's ImagePositionPatient as the DICOM decimal strings the C++ test writes into its files, in a shuffled
file order with misleading InstanceNumbers) and, per slice, what `nibabel.nicom.dicomwrappers.Wrapper` says:
its `affine` (voxel (row, column, 0) -> DICOM patient LPS mm) and its `slice_indicator`.

pydicom is not installed here, so the wrapper gets a plain dict holding the same attribute values pydicom
would give it (nibabel's Wrapper accepts any object with `get`). tests/unit/io/test_dicom.cpp writes the
files with DCMTK, reads them with hlip and checks that every voxel lands where nibabel puts it.

Run with Debian's interpreter: /usr/bin/python3 tests/ref/make_dicom_ref.py
"""

import json
import os
import warnings

import nibabel
import numpy as np

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # nibabel warns that its DICOM readers are experimental
    from nibabel.nicom import dicomwrappers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "data", "dicom")


def rotation(degrees_x, degrees_y, degrees_z):
    ax, ay, az = np.radians([degrees_x, degrees_y, degrees_z])
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def ds(values, digits):
    """DICOM decimal strings (at most 16 characters each), joined by backslashes."""
    texts = [f"{v:.{digits}f}" for v in values]
    assert all(len(t) <= 16 for t in texts)
    return "\\".join(texts)


def oblique_stack():
    rows, columns, num_slices, gap = 5, 7, 6, 2.5
    r = rotation(10.0, -15.0, 20.0)
    iop_text = ds(list(r[:, 0]) + list(r[:, 1]), 8)
    iop = np.array([float(t) for t in iop_text.split("\\")])
    normal = np.cross(iop[:3], iop[3:])  # DICOM's slice normal: row cosines x column cosines
    origin = np.array([-20.5, 31.25, 12.0])
    spacing_text = "0.7\\0.9"  # between rows, between columns
    file_order = [3, 0, 5, 1, 4, 2]  # file f holds slice file_order[f] of the stack
    slices = []
    for f, k in enumerate(file_order):
        ipp_text = ds(origin + k * gap * normal, 6)
        attributes = {
            "ImageOrientationPatient": [float(t) for t in iop_text.split("\\")],
            "ImagePositionPatient": [float(t) for t in ipp_text.split("\\")],
            "PixelSpacing": [float(t) for t in spacing_text.split("\\")],
            "SliceThickness": gap,
            "Rows": rows,
            "Columns": columns,
        }
        wrapper = dicomwrappers.Wrapper(attributes)
        slices.append(
            {
                "file": f"IM{f:04d}",
                "ipp": ipp_text,
                "instance_number": num_slices - f,  # deliberately unrelated to the position
                "stack_index": k,
                "nibabel_affine_lps": wrapper.affine.tolist(),
                "nibabel_slice_indicator": float(wrapper.slice_indicator),
            }
        )
    return {
        "rows": rows,
        "columns": columns,
        "iop": iop_text,
        "pixel_spacing": spacing_text,
        "slice_thickness": f"{gap}",
        "slice_gap_mm": gap,
        "slices": slices,
    }


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    doc = {
        "generator": "tests/ref/make_dicom_ref.py",
        "nibabel_version": nibabel.__version__,
        "oblique": oblique_stack(),
    }
    with open(os.path.join(OUT_DIR, "expected.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
