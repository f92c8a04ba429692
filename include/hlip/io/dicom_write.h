#pragma once
// DICOM series out, through DCMTK: a volume of integer values (Hounsfield units for CT) becomes one file per
// slice, readable by read_dicom_series with the same voxels and affine. Used by `hlip synth` for its CT
// studies; every byte follows from the volume and the options (no timestamps, no generated UIDs).
//
//   hlip::io::DicomWriteOptions options;
//   options.study_uid = "2.25.1234";
//   options.series_uid = "2.25.5678";
//   hlip::io::write_dicom_series("study/CT", volume, options);   // study/CT/slice-0001.dcm, ...

#include <cstdint>
#include <string>

#include "hlip/io/volume.h"

namespace hlip::io {

struct DicomWriteOptions {
  std::string study_uid, series_uid;   // required; SOPInstanceUID k is series_uid + "." + k (k from 1)
  std::string frame_of_reference_uid;  // empty: series_uid + ".0"
  std::string modality = "CT";         // CT writes CT Image Storage, anything else Secondary Capture
  std::string description;             // SeriesDescription
  std::string patient_id;              // PatientID and PatientName
  int64_t series_number = 1;
  // Stored value = value − intercept, as unsigned 12-bit (BitsAllocated 16, BitsStored 12, HighBit 11), with
  // RescaleSlope 1: the usual CT encoding, where −1024 makes air (−1000 HU) a small positive number.
  double rescale_intercept = -1024;
};

// Writes `volume` ([I, J, K] integer voxels, voxel → RAS+ affine) as `folder/slice-0001.dcm`, ... (slice k
// at ImagePositionPatient = affine · (0, 0, k), LPS), Explicit VR Little Endian. The affine's slice axis must
// be right-handed (column 2 along column 0 × column 1), as DICOM readers sort slices along row × column
// cosines. Values outside what 12 bits hold after the intercept, a left-handed or sheared affine, and empty
// UIDs are errors naming the folder and the value.
void write_dicom_series(const std::string& folder, const Volume& volume, const DicomWriteOptions& options);

}  // namespace hlip::io
