#pragma once
// Shared by the DICOM reader (dicom.cpp) and writer (dicom_write.cpp): DCMTK's one-time set-up.

namespace hlip::io::detail {

// Silences DCMTK's own logging (hlip reports problems in its messages), registers the JPEG, JPEG-LS and RLE
// decoders once per process, and throws when no DICOM data dictionary is loaded (DCMDICTPATH).
void init_dcmtk();

}  // namespace hlip::io::detail
