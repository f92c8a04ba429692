#pragma once
// DICOM series in, through DCMTK: a folder (or a list of files) holding one or more series becomes a Volume.
//
//   hlip::io::DicomScan scan = hlip::io::scan_dicom({"study/CT"});   // what is there, nothing decoded
//   for (const auto& s : scan.series) fmt::print("{} {} {} slices\n", s.series_uid, s.modality,
//   s.num_slices()); hlip::io::DicomReadOptions options; options.series_uid = scan.series[0].series_uid; //
//   empty: the only or the largest series hlip::io::Volume vol = hlip::io::read_dicom_series("study/CT",
//   options);
//
// Index convention: `data[i][j][k]` is the pixel in column i and row j of the k-th slice, slices sorted by
// ImagePositionPatient projected on the slice normal n = row cosines × column cosines
// (ImageOrientationPatient), ascending. `affine` maps (i, j, k) to scanner RAS+ mm: the DICOM patient (LPS)
// geometry with x and y negated,
//   column 0 = row cosines · PixelSpacing[1], column 1 = column cosines · PixelSpacing[0],
//   column 2 = n · slice spacing, column 3 = ImagePositionPatient of the first slice.
// The voxel → world mapping is the one nibabel's `nicom.dicomwrappers` gives each slice (which indexes a
// slice [row, column] instead); dcm2niix also puts columns first but may store rows bottom-up.
// docs/volumes.md has the rules: what is skipped, uneven slice gaps, pixel formats, compressed transfer
// syntaxes and errors.

#include <cstdint>
#include <string>
#include <vector>

#include "hlip/io/volume.h"

namespace hlip::io {

// A file left out of a series, and why ("ImageType ORIGINAL\PRIMARY\LOCALIZER: localizer").
struct DicomSkippedFile {
  std::string path;
  std::string reason;
  // The file names a SeriesInstanceUID but DCMTK could not parse it completely (truncated, corrupt): reading
  // that series fails rather than silently leaving a slice out.
  bool unreadable = false;
};

struct DicomSeriesInfo {
  std::string series_uid;      // SeriesInstanceUID
  std::string modality;        // Modality ("CT", "MR", ...)
  std::string description;     // SeriesDescription
  int64_t series_number = -1;  // SeriesNumber, -1 when absent
  int64_t rows = 0, columns = 0;
  std::string transfer_syntax;            // name of the first slice's transfer syntax
  std::vector<std::string> files;         // the slices, sorted along the slice normal
  std::vector<double> positions_mm;       // each slice's ImagePositionPatient · n, same order as `files`
  std::vector<DicomSkippedFile> skipped;  // this series' files that are not slices of the volume
  double slice_spacing_mm = 0;  // the median gap between consecutive positions (see below for one slice)
  double min_gap_mm = 0, max_gap_mm = 0;
  // Some gap differs from the median by more than max(1 %, 0.01 mm). Nothing is resampled: the volume keeps
  // the median as its spacing, so slices away from the median lie where the affine does not put them.
  bool uneven_gaps = false;
  std::vector<std::string> warnings;  // uneven gaps, in-plane drift of the positions (gantry tilt), ...

  int64_t num_slices() const { return static_cast<int64_t>(files.size()); }
};

struct DicomScan {
  std::vector<DicomSeriesInfo> series;    // ordered by SeriesNumber, then SeriesInstanceUID
  std::vector<DicomSkippedFile> skipped;  // files that belong to no series: not DICOM, no pixel data, ...
  int64_t files_seen = 0;
};

// Reads the headers of `paths`: files, or folders whose regular files are all considered (subfolders are not
// searched). A path that does not exist is an error; files that are not DICOM images are skipped with a
// reason (logged at info level) and listed.
DicomScan scan_dicom(const std::vector<std::string>& paths);

struct DicomReadOptions {
  std::string series_uid;  // empty: the only series, or the one with the most slices (ties: the first)
  VoxelValues values = VoxelValues::kScaledFloat32;
};

// Reads one series from `paths` (as scan_dicom takes them) into a Volume: RescaleSlope/Intercept applied per
// slice (kScaledFloat32), MONOCHROME1 inverted, spacing (PixelSpacing[1], PixelSpacing[0], slice spacing).
// A single file makes a one-slice volume. `info`, when given, receives the series' record.
Volume read_dicom_series(const std::vector<std::string>& paths, const DicomReadOptions& options = {},
                         DicomSeriesInfo* info = nullptr);
Volume read_dicom_series(const std::string& folder_or_file, const DicomReadOptions& options = {},
                         DicomSeriesInfo* info = nullptr);

// True when `path` is a folder, ends in .dcm (any case), or is a file with the "DICM" magic at byte 128:
// what read_volume sends to the DICOM reader.
bool looks_like_dicom(const std::string& path);

}  // namespace hlip::io
