#include "hlip/io/dicom_write.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "dcmtk_init.h"
#include "hlip/core/error.h"
#include "hlip/core/files.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;

using Vec3 = std::array<double, 3>;

// A Decimal String (DS) holds at most 16 characters: the most significant digits that fit.
std::string decimal(double value) {
  for (int digits = 10; digits > 1; --digits) {
    std::string text = fmt::format("{:.{}g}", value, digits);
    if (text.size() <= 16) return text;
  }
  return fmt::format("{:.1g}", value);
}

std::string decimals(const std::vector<double>& values) {
  std::string text;
  for (double value : values)
    text += (text.empty() ? "" : "\\") + decimal(value);
  return text;
}

double norm(const Vec3& v) {
  return std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]);
}

// RAS+ → DICOM patient LPS+ (x and y negated).
Vec3 to_lps(const Vec3& v) {
  return {-v[0], -v[1], v[2]};
}

void put(const std::string& folder, DcmDataset& ds, const DcmTagKey& tag, const std::string& value) {
  const OFCondition status = ds.putAndInsertString(tag, value.c_str());
  if (status.bad()) {
    throw Error(fmt::format("{}: DICOM element {} = \"{}\": {}", folder, DcmTag(tag).getTagName(), value,
                            status.text()));
  }
}

void put(const std::string& folder, DcmDataset& ds, const DcmTagKey& tag, Uint16 value) {
  const OFCondition status = ds.putAndInsertUint16(tag, value);
  if (status.bad()) {
    throw Error(
        fmt::format("{}: DICOM element {} = {}: {}", folder, DcmTag(tag).getTagName(), value, status.text()));
  }
}

}  // namespace

void write_dicom_series(const std::string& folder, const Volume& volume, const DicomWriteOptions& options) {
  detail::init_dcmtk();
  if (options.study_uid.empty() || options.series_uid.empty())
    throw Error(
        fmt::format("{}: write_dicom_series needs a StudyInstanceUID and a SeriesInstanceUID", folder));
  const at::Tensor& data = volume.data;
  if (data.dim() != 3 || at::isFloatingType(data.scalar_type())) {
    throw Error(fmt::format("{}: write_dicom_series takes a 3D integer volume, not {}D {}", folder,
                            data.dim(), c10::toString(data.scalar_type())));
  }
  const int64_t columns = data.size(0), rows = data.size(1), slices = data.size(2);
  if (columns > 65535 || rows > 65535 || columns == 0 || rows == 0 || slices == 0) {
    throw Error(fmt::format("{}: {}×{}×{} voxels do not fit DICOM slices", folder, columns, rows, slices));
  }

  const auto& a = volume.affine;
  const Vec3 column0{a[0][0], a[1][0], a[2][0]}, column1{a[0][1], a[1][1], a[2][1]},
      column2{a[0][2], a[1][2], a[2][2]};
  const double spacing_i = norm(column0), spacing_j = norm(column1), spacing_k = norm(column2);
  if (spacing_i <= 0 || spacing_j <= 0 || spacing_k <= 0)
    throw Error(fmt::format("{}: the affine has a zero column", folder));
  Vec3 row_cosines{}, column_cosines{}, normal{};
  for (int r = 0; r < 3; ++r) {
    row_cosines[r] = column0[r] / spacing_i;
    column_cosines[r] = column1[r] / spacing_j;
  }
  normal = {row_cosines[1] * column_cosines[2] - row_cosines[2] * column_cosines[1],
            row_cosines[2] * column_cosines[0] - row_cosines[0] * column_cosines[2],
            row_cosines[0] * column_cosines[1] - row_cosines[1] * column_cosines[0]};
  const double along = (normal[0] * column2[0] + normal[1] * column2[1] + normal[2] * column2[2]) / spacing_k;
  const double orthogonal = row_cosines[0] * column_cosines[0] + row_cosines[1] * column_cosines[1] +
                            row_cosines[2] * column_cosines[2];
  if (std::abs(orthogonal) > 1e-6 || along < 1 - 1e-6) {
    throw Error(fmt::format(
        "{}: the affine's slice axis must be orthogonal to the slices and along row × column cosines "
        "(a right-handed, unsheared stack); cos(row, column) = {:.3g}, cos(slice, normal) = {:.3g}",
        folder, orthogonal, along));
  }

  const at::Tensor values = data.to(at::kInt).permute({2, 1, 0}).contiguous();  // [K, J, I]: rows of columns
  const int32_t* voxels = values.data_ptr<int32_t>();
  const double intercept = options.rescale_intercept;
  const std::string frame_uid =
      options.frame_of_reference_uid.empty() ? options.series_uid + ".0" : options.frame_of_reference_uid;
  const bool ct = options.modality == "CT";
  const Vec3 row_lps = to_lps(row_cosines), column_lps = to_lps(column_cosines);
  const std::string orientation =
      decimals({row_lps[0], row_lps[1], row_lps[2], column_lps[0], column_lps[1], column_lps[2]});
  create_directories(folder);
  const int64_t per_slice = rows * columns;
  std::vector<Uint16> pixels(static_cast<size_t>(per_slice));
  for (int64_t k = 0; k < slices; ++k) {
    const std::string instance = std::to_string(k + 1);
    const std::string path = fmt::format("{}/slice-{:04d}.dcm", folder, k + 1);
    for (int64_t p = 0; p < per_slice; ++p) {
      const double stored = voxels[k * per_slice + p] - intercept;
      if (stored < 0 || stored > 4095) {
        throw Error(fmt::format("{}: value {} does not fit 12 bits with RescaleIntercept {}", path,
                                voxels[k * per_slice + p], intercept));
      }
      pixels[static_cast<size_t>(p)] = static_cast<Uint16>(stored);
    }
    Vec3 position{};
    for (int r = 0; r < 3; ++r)
      position[r] = a[r][3] + a[r][2] * static_cast<double>(k);
    const Vec3 position_lps = to_lps(position);

    DcmFileFormat file;
    DcmDataset& ds = *file.getDataset();
    put(path, ds, DCM_SOPClassUID, ct ? UID_CTImageStorage : UID_SecondaryCaptureImageStorage);
    put(path, ds, DCM_SOPInstanceUID, options.series_uid + "." + instance);
    put(path, ds, DCM_StudyInstanceUID, options.study_uid);
    put(path, ds, DCM_SeriesInstanceUID, options.series_uid);
    put(path, ds, DCM_FrameOfReferenceUID, frame_uid);
    put(path, ds, DCM_PatientName, options.patient_id);
    put(path, ds, DCM_PatientID, options.patient_id);
    put(path, ds, DCM_Modality, options.modality);
    put(path, ds, DCM_SeriesDescription, options.description);
    put(path, ds, DCM_ImageType, "ORIGINAL\\PRIMARY\\AXIAL");
    put(path, ds, DCM_SeriesNumber, std::to_string(options.series_number));
    put(path, ds, DCM_InstanceNumber, instance);
    put(path, ds, DCM_ImagePositionPatient, decimals({position_lps[0], position_lps[1], position_lps[2]}));
    put(path, ds, DCM_ImageOrientationPatient, orientation);
    put(path, ds, DCM_PixelSpacing, decimals({spacing_j, spacing_i}));  // between rows, between columns
    put(path, ds, DCM_SliceThickness, decimal(spacing_k));
    put(path, ds, DCM_RescaleIntercept, decimal(intercept));
    put(path, ds, DCM_RescaleSlope, "1");
    if (ct) put(path, ds, DCM_RescaleType, "HU");
    put(path, ds, DCM_SamplesPerPixel, Uint16{1});
    put(path, ds, DCM_PhotometricInterpretation, "MONOCHROME2");
    put(path, ds, DCM_Rows, static_cast<Uint16>(rows));
    put(path, ds, DCM_Columns, static_cast<Uint16>(columns));
    put(path, ds, DCM_BitsAllocated, Uint16{16});
    put(path, ds, DCM_BitsStored, Uint16{12});
    put(path, ds, DCM_HighBit, Uint16{11});
    put(path, ds, DCM_PixelRepresentation, Uint16{0});
    const OFCondition pixel_status =
        ds.putAndInsertUint16Array(DCM_PixelData, pixels.data(), static_cast<unsigned long>(per_slice));
    if (pixel_status.bad()) throw Error(fmt::format("{}: PixelData: {}", path, pixel_status.text()));

    // Written under a temporary name and renamed, so a series folder never holds a half-written slice.
    const std::string temporary = path + ".tmp";
    const OFCondition saved = file.saveFile(temporary.c_str(), EXS_LittleEndianExplicit);
    if (saved.bad()) throw Error(fmt::format("{}: cannot write the DICOM file: {}", path, saved.text()));
    std::error_code error;
    fs::rename(temporary, path, error);
    if (error) throw Error(fmt::format("{}: cannot rename {}: {}", path, temporary, error.message()));
  }
}

}  // namespace hlip::io
