#include "hlip/io/dicom.h"

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dccodec.h>
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcxfer.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>

#include "dcmtk_init.h"
#include "hlip/core/error.h"

namespace hlip::io {
namespace {

namespace fs = std::filesystem;

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "DCMTK returns pixel words in host byte order; the unpacking below assumes little-endian");

// Orientation cosines closer than this (per component) count as the same orientation.
constexpr double kOrientationTolerance = 1e-4;
// Two slices closer than this along the normal share a position.
constexpr double kSamePositionMm = 1e-3;

std::string trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())))
    s.pop_back();
  size_t start = 0;
  while (start < s.size() && std::isspace(static_cast<unsigned char>(s[start])))
    ++start;
  return s.substr(start);
}

std::string get_string(DcmItem& item, const DcmTagKey& tag) {
  OFString value;
  if (item.findAndGetOFStringArray(tag, value).good()) return trim(value.c_str());
  return {};
}

// The element's numbers, or nullopt-like false when it is absent, has another multiplicity or is not numeric.
template <size_t N>
bool get_numbers(DcmItem& item, const DcmTagKey& tag, std::array<double, N>& out) {
  DcmElement* element = nullptr;
  if (item.findAndGetElement(tag, element).bad() || element == nullptr || element->getVM() != N) return false;
  for (size_t i = 0; i < N; ++i) {
    Float64 value = 0;
    if (element->getFloat64(value, static_cast<unsigned long>(i)).bad() || !std::isfinite(value))
      return false;
    out[i] = value;
  }
  return true;
}

double get_number(DcmItem& item, const DcmTagKey& tag, double fallback) {
  std::array<double, 1> value{};
  return get_numbers(item, tag, value) ? value[0] : fallback;
}

int64_t get_integer(DcmItem& item, const DcmTagKey& tag, int64_t fallback) {
  Uint16 u16 = 0;
  Sint32 s32 = 0;
  DcmElement* element = nullptr;
  if (item.findAndGetElement(tag, element).bad() || element == nullptr || element->getVM() < 1)
    return fallback;
  if (element->getUint16(u16).good()) return u16;
  if (element->getSint32(s32).good()) return s32;
  return fallback;
}

// DICOM Part 10 files start with a 128-byte preamble and "DICM".
bool has_dicm_magic(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[132] = {};
  return in.read(head, sizeof head) && std::memcmp(head + 128, "DICM", 4) == 0;
}

std::string file_name(const std::string& path) {
  return fs::path(path).filename().string();
}

// What hlip needs from one file's header.
struct SliceHeader {
  std::string path;
  std::string series_uid, sop_uid, modality, description, image_type, photometric, transfer_syntax;
  E_TransferSyntax xfer = EXS_Unknown;
  int64_t series_number = -1, instance_number = 0;
  int64_t rows = 0, columns = 0, samples = 1, frames = 1;
  int64_t bits_allocated = 0, bits_stored = 0, high_bit = 0, pixel_representation = 0;
  std::string iop_text, ipp_text, spacing_text;
  bool has_iop = false, has_ipp = false, has_spacing = false;
  std::array<double, 6> iop{};  // row cosines (along a row: increasing column), then column cosines
  std::array<double, 3> ipp{};
  std::array<double, 2> pixel_spacing{};  // between rows, between columns
  double slope = 1, intercept = 0;
  double spacing_between_slices = 0, slice_thickness = 0;

  std::array<double, 3> normal() const {
    return {iop[1] * iop[5] - iop[2] * iop[4], iop[2] * iop[3] - iop[0] * iop[5],
            iop[0] * iop[4] - iop[1] * iop[3]};
  }
  double position() const {
    const auto n = normal();
    return ipp[0] * n[0] + ipp[1] * n[1] + ipp[2] * n[2];
  }
};

SliceHeader read_slice_header(const std::string& path, DcmDataset& ds) {
  SliceHeader h;
  h.path = path;
  h.series_uid = get_string(ds, DCM_SeriesInstanceUID);
  h.sop_uid = get_string(ds, DCM_SOPInstanceUID);
  h.modality = get_string(ds, DCM_Modality);
  h.description = get_string(ds, DCM_SeriesDescription);
  h.image_type = get_string(ds, DCM_ImageType);
  h.photometric = get_string(ds, DCM_PhotometricInterpretation);
  h.xfer = ds.getOriginalXfer();
  h.transfer_syntax = DcmXfer(h.xfer).getXferName();
  h.series_number = get_integer(ds, DCM_SeriesNumber, -1);
  h.instance_number = get_integer(ds, DCM_InstanceNumber, 0);
  h.rows = get_integer(ds, DCM_Rows, 0);
  h.columns = get_integer(ds, DCM_Columns, 0);
  h.samples = get_integer(ds, DCM_SamplesPerPixel, 1);
  h.frames = get_integer(ds, DCM_NumberOfFrames, 1);
  h.bits_allocated = get_integer(ds, DCM_BitsAllocated, 0);
  h.bits_stored = get_integer(ds, DCM_BitsStored, h.bits_allocated);
  h.high_bit = get_integer(ds, DCM_HighBit, h.bits_stored - 1);
  h.pixel_representation = get_integer(ds, DCM_PixelRepresentation, 0);
  h.iop_text = get_string(ds, DCM_ImageOrientationPatient);
  h.ipp_text = get_string(ds, DCM_ImagePositionPatient);
  h.spacing_text = get_string(ds, DCM_PixelSpacing);
  h.has_iop = get_numbers(ds, DCM_ImageOrientationPatient, h.iop);
  h.has_ipp = get_numbers(ds, DCM_ImagePositionPatient, h.ipp);
  h.has_spacing = get_numbers(ds, DCM_PixelSpacing, h.pixel_spacing);
  h.slope = get_number(ds, DCM_RescaleSlope, 1.0);
  h.intercept = get_number(ds, DCM_RescaleIntercept, 0.0);
  h.spacing_between_slices = get_number(ds, DCM_SpacingBetweenSlices, 0.0);
  h.slice_thickness = get_number(ds, DCM_SliceThickness, 0.0);
  return h;
}

bool contains_word(const std::string& multi_value, const std::string& word) {
  size_t start = 0;
  while (start <= multi_value.size()) {
    size_t end = multi_value.find('\\', start);
    if (end == std::string::npos) end = multi_value.size();
    if (trim(multi_value.substr(start, end - start)) == word) return true;
    start = end + 1;
  }
  return false;
}

// Why a file with pixel data cannot be a slice of a volume, or empty when it can.
std::string slice_problem(const SliceHeader& h) {
  if (contains_word(h.image_type, "LOCALIZER")) return fmt::format("ImageType {}: localizer", h.image_type);
  if (h.frames > 1) {
    return fmt::format(
        "NumberOfFrames {}: multi-frame (enhanced) images are not supported; convert the series "
        "with dcm2niix",
        h.frames);
  }
  if (h.samples != 1)
    return fmt::format("SamplesPerPixel {}: only single-channel images are supported", h.samples);
  if (h.photometric != "MONOCHROME1" && h.photometric != "MONOCHROME2") {
    return fmt::format("PhotometricInterpretation '{}': only MONOCHROME1 and MONOCHROME2 are supported",
                       h.photometric);
  }
  if (h.rows <= 0 || h.columns <= 0) return fmt::format("Rows {} Columns {}: empty image", h.rows, h.columns);
  if (h.bits_allocated != 8 && h.bits_allocated != 16) {
    return fmt::format("BitsAllocated {}: only 8 and 16 are supported", h.bits_allocated);
  }
  if (h.bits_stored < 1 || h.bits_stored > h.bits_allocated || h.high_bit < h.bits_stored - 1 ||
      h.high_bit >= h.bits_allocated) {
    return fmt::format("BitsStored {} HighBit {} do not fit BitsAllocated {}", h.bits_stored, h.high_bit,
                       h.bits_allocated);
  }
  if (h.pixel_representation != 0 && h.pixel_representation != 1) {
    return fmt::format("PixelRepresentation {}: must be 0 or 1", h.pixel_representation);
  }
  if (!h.has_iop) return fmt::format("ImageOrientationPatient '{}': not 6 numbers", h.iop_text);
  if (!h.has_ipp) return fmt::format("ImagePositionPatient '{}': not 3 numbers", h.ipp_text);
  if (!h.has_spacing || h.pixel_spacing[0] <= 0 || h.pixel_spacing[1] <= 0) {
    return fmt::format("PixelSpacing '{}': not 2 positive numbers", h.spacing_text);
  }
  const auto& o = h.iop;
  const double row_norm = std::sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2]);
  const double col_norm = std::sqrt(o[3] * o[3] + o[4] * o[4] + o[5] * o[5]);
  const double dot = o[0] * o[3] + o[1] * o[4] + o[2] * o[5];
  if (std::abs(row_norm - 1) > 1e-3 || std::abs(col_norm - 1) > 1e-3 || std::abs(dot) > 1e-3) {
    return fmt::format("ImageOrientationPatient '{}': the cosines are not orthonormal", h.iop_text);
  }
  if (!std::isfinite(h.slope) || h.slope == 0) return fmt::format("RescaleSlope {} is not usable", h.slope);
  if (DcmXfer(h.xfer).isEncapsulated() && !DcmCodecList::canChangeCoding(h.xfer, EXS_LittleEndianExplicit)) {
    return fmt::format("transfer syntax {} ({}): DCMTK has no decoder for it", h.transfer_syntax,
                       DcmXfer(h.xfer).getXferID());
  }
  return {};
}

// How a slice differs from the reference slice of its series' main stack, or empty when it does not.
std::string geometry_difference(const SliceHeader& h, const SliceHeader& ref) {
  for (int a = 0; a < 6; ++a) {
    if (std::abs(h.iop[a] - ref.iop[a]) > kOrientationTolerance) {
      return fmt::format(
          "ImageOrientationPatient {} differs from the series' {} (a localizer or another stack)", h.iop_text,
          ref.iop_text);
    }
  }
  if (h.rows != ref.rows || h.columns != ref.columns) {
    return fmt::format("Rows×Columns {}×{} differs from the series' {}×{}", h.rows, h.columns, ref.rows,
                       ref.columns);
  }
  for (int a = 0; a < 2; ++a) {
    if (std::abs(h.pixel_spacing[a] - ref.pixel_spacing[a]) > kOrientationTolerance) {
      return fmt::format("PixelSpacing {} differs from the series' {}", h.spacing_text, ref.spacing_text);
    }
  }
  if (h.bits_allocated != ref.bits_allocated || h.pixel_representation != ref.pixel_representation) {
    return fmt::format("BitsAllocated {} PixelRepresentation {} differ from the series' {} {}",
                       h.bits_allocated, h.pixel_representation, ref.bits_allocated,
                       ref.pixel_representation);
  }
  return {};
}

struct SeriesRecord {
  DicomSeriesInfo info;
  std::vector<SliceHeader> slices;  // in the order of info.files once finished
};

struct ScanResult {
  DicomScan scan;
  std::vector<SeriesRecord> records;  // parallel to scan.series
};

std::vector<std::string> list_files(const std::vector<std::string>& paths) {
  std::vector<std::string> files;
  for (const auto& path : paths) {
    std::error_code error;
    const auto status = fs::status(path, error);
    if (!fs::exists(status)) throw Error(fmt::format("{}: no such file or folder", path));
    if (fs::is_directory(status)) {
      std::vector<std::string> inside;
      for (const auto& entry : fs::directory_iterator(path, error)) {
        std::error_code entry_error;
        if (entry.is_regular_file(entry_error)) inside.push_back(entry.path().string());
      }
      if (error) throw Error(fmt::format("{}: cannot list the folder: {}", path, error.message()));
      std::sort(inside.begin(), inside.end());
      files.insert(files.end(), inside.begin(), inside.end());
    } else if (fs::is_regular_file(status)) {
      files.push_back(path);
    } else {
      throw Error(fmt::format("{}: not a regular file or folder", path));
    }
  }
  return files;
}

void skip(std::vector<DicomSkippedFile>& list, const std::string& path, std::string reason,
          bool unreadable = false) {
  spdlog::info("{}: skipped: {}", path, reason);
  list.push_back({path, std::move(reason), unreadable});
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 == 1 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Keeps the largest stack of matching geometry, sorts it along the normal and measures the gaps.
void finish_series(SeriesRecord& record) {
  auto& info = record.info;
  auto& slices = record.slices;
  if (slices.empty()) return;

  std::vector<std::vector<size_t>> stacks;  // indices into slices, grouped by geometry
  for (size_t s = 0; s < slices.size(); ++s) {
    auto stack = std::find_if(stacks.begin(), stacks.end(), [&](const std::vector<size_t>& members) {
      return geometry_difference(slices[s], slices[members.front()]).empty();
    });
    if (stack == stacks.end()) {
      stacks.push_back({s});
    } else {
      stack->push_back(s);
    }
  }
  const auto main_stack = std::max_element(stacks.begin(), stacks.end(),
                                           [](const auto& a, const auto& b) { return a.size() < b.size(); });
  const SliceHeader& reference = slices[main_stack->front()];
  std::vector<SliceHeader> kept;
  for (size_t s = 0; s < slices.size(); ++s) {
    std::string difference = geometry_difference(slices[s], reference);
    if (difference.empty()) {
      kept.push_back(slices[s]);
    } else {
      skip(info.skipped, slices[s].path, std::move(difference));
    }
  }

  std::sort(kept.begin(), kept.end(), [](const SliceHeader& a, const SliceHeader& b) {
    return std::make_tuple(a.position(), a.instance_number, a.path) <
           std::make_tuple(b.position(), b.instance_number, b.path);
  });
  slices.clear();
  int64_t shared_positions = 0;
  for (auto& slice : kept) {
    if (!slices.empty() && std::abs(slice.position() - slices.back().position()) < kSamePositionMm) {
      if (!slice.sop_uid.empty() && slice.sop_uid == slices.back().sop_uid) {
        skip(info.skipped, slice.path,
             fmt::format("duplicate of {} (same SOPInstanceUID {})", file_name(slices.back().path),
                         slice.sop_uid));
        continue;
      }
      ++shared_positions;
    }
    slices.push_back(std::move(slice));
  }
  if (shared_positions > 0) {
    info.warnings.push_back(fmt::format(
        "{} images share a slice position with another (echoes, time points or diffusion directions?)",
        shared_positions));
  }

  const SliceHeader& first = slices.front();
  info.rows = first.rows;
  info.columns = first.columns;
  info.transfer_syntax = first.transfer_syntax;
  for (const auto& slice : slices) {
    info.files.push_back(slice.path);
    info.positions_mm.push_back(slice.position());
  }
  if (slices.size() == 1) {
    // nibabel's rule for a lone slice: SpacingBetweenSlices, else SliceThickness, else 1.
    info.slice_spacing_mm = first.spacing_between_slices > 0 ? first.spacing_between_slices
                            : first.slice_thickness > 0      ? first.slice_thickness
                                                             : 1.0;
    info.min_gap_mm = info.max_gap_mm = info.slice_spacing_mm;
    return;
  }
  std::vector<double> gaps;
  for (size_t s = 1; s < info.positions_mm.size(); ++s)
    gaps.push_back(info.positions_mm[s] - info.positions_mm[s - 1]);
  info.slice_spacing_mm = median(gaps);
  info.min_gap_mm = *std::min_element(gaps.begin(), gaps.end());
  info.max_gap_mm = *std::max_element(gaps.begin(), gaps.end());
  const double tolerance = std::max(0.01 * info.slice_spacing_mm, 0.01);
  if (info.max_gap_mm - info.slice_spacing_mm > tolerance ||
      info.slice_spacing_mm - info.min_gap_mm > tolerance) {
    info.uneven_gaps = true;
    info.warnings.push_back(fmt::format(
        "uneven slice gaps from {:.4g} to {:.4g} mm (median {:.4g} mm): not resampled, the volume "
        "uses the median spacing",
        info.min_gap_mm, info.max_gap_mm, info.slice_spacing_mm));
  }
  const auto n = first.normal();
  double drift = 0;
  for (const auto& slice : slices) {
    std::array<double, 3> d{};
    for (int a = 0; a < 3; ++a)
      d[a] = slice.ipp[a] - first.ipp[a];
    const double along = d[0] * n[0] + d[1] * n[1] + d[2] * n[2];
    double off = 0;
    for (int a = 0; a < 3; ++a)
      off += (d[a] - along * n[a]) * (d[a] - along * n[a]);
    drift = std::max(drift, std::sqrt(off) - 0.001 * std::abs(along));
  }
  if (drift > 0.01) {
    info.warnings.push_back(fmt::format(
        "slice positions drift up to {:.3g} mm off the slice normal (gantry tilt or a sheared stack): "
        "not corrected, the affine assumes a straight stack",
        drift));
  }
}

ScanResult scan_files(const std::vector<std::string>& paths) {
  detail::init_dcmtk();
  const std::vector<std::string> files = list_files(paths);
  ScanResult result;
  result.scan.files_seen = static_cast<int64_t>(files.size());
  std::map<std::string, SeriesRecord> series;
  auto record_for = [&](const SliceHeader& h) -> SeriesRecord& {
    SeriesRecord& record = series[h.series_uid];
    if (record.info.series_uid.empty()) {
      record.info.series_uid = h.series_uid;
      record.info.modality = h.modality;
      record.info.description = h.description;
      record.info.series_number = h.series_number;
    }
    return record;
  };

  for (const auto& path : files) {
    DcmFileFormat file;
    const OFCondition loaded = file.loadFile(path.c_str());
    DcmDataset& ds = *file.getDataset();
    const SliceHeader h = read_slice_header(path, ds);
    if (loaded.bad()) {
      const std::string reason = fmt::format(
          "{} (DCMTK: {})", has_dicm_magic(path) ? "truncated or corrupt DICOM file" : "not a DICOM file",
          loaded.text());
      if (h.series_uid.empty()) {
        skip(result.scan.skipped, path, reason);
      } else {
        skip(record_for(h).info.skipped, path, reason, /*unreadable=*/true);
      }
      continue;
    }
    if (!ds.tagExists(DCM_PixelData)) {
      skip(result.scan.skipped, path,
           fmt::format("no PixelData: not an image (Modality '{}', SOPClassUID '{}')", h.modality,
                       get_string(ds, DCM_SOPClassUID)));
      continue;
    }
    if (h.series_uid.empty()) {
      skip(result.scan.skipped, path, "no SeriesInstanceUID");
      continue;
    }
    SeriesRecord& record = record_for(h);
    std::string problem = slice_problem(h);
    if (problem.empty()) {
      record.slices.push_back(h);
    } else {
      skip(record.info.skipped, path, std::move(problem));
    }
  }

  for (auto& [uid, record] : series) {
    finish_series(record);
    result.records.push_back(std::move(record));
  }
  std::stable_sort(result.records.begin(), result.records.end(),
                   [](const SeriesRecord& a, const SeriesRecord& b) {
                     return a.info.series_number < b.info.series_number;
                   });
  for (const auto& record : result.records)
    result.scan.series.push_back(record.info);
  return result;
}

std::string paths_label(const std::vector<std::string>& paths) {
  if (paths.empty()) return "(no paths)";
  if (paths.size() == 1) return paths.front();
  return fmt::format("{} and {} more paths", paths.front(), paths.size() - 1);
}

// "N files skipped: a.dcm: reason; b.dcm: reason; c.dcm: reason; and M more".
std::string skipped_summary(const std::vector<const DicomSkippedFile*>& skipped) {
  std::string list;
  const size_t shown = std::min<size_t>(skipped.size(), 3);
  for (size_t s = 0; s < shown; ++s)
    list += fmt::format("{}{}: {}", s == 0 ? "" : "; ", file_name(skipped[s]->path), skipped[s]->reason);
  if (skipped.size() > shown) list += fmt::format("; and {} more", skipped.size() - shown);
  return fmt::format("{} file{} skipped: {}", skipped.size(), skipped.size() == 1 ? "" : "s", list);
}

std::string no_image_message(const std::string& label, const ScanResult& result) {
  if (result.scan.files_seen == 0) {
    return fmt::format("{}: no DICOM image with pixel data: no files (subfolders are not searched)", label);
  }
  std::vector<const DicomSkippedFile*> skipped;
  for (const auto& s : result.scan.skipped)
    skipped.push_back(&s);
  for (const auto& record : result.records) {
    for (const auto& s : record.info.skipped)
      skipped.push_back(&s);
  }
  return fmt::format("{}: no DICOM image with pixel data ({})", label, skipped_summary(skipped));
}

const SeriesRecord& choose_series(const std::string& label, const ScanResult& result,
                                  const DicomReadOptions& options) {
  const auto& records = result.records;
  if (!options.series_uid.empty()) {
    for (const auto& record : records) {
      if (record.info.series_uid == options.series_uid) return record;
    }
    std::string available;
    for (const auto& record : records)
      available += fmt::format("{}{} ({} slices)", available.empty() ? "" : ", ", record.info.series_uid,
                               record.info.num_slices());
    throw Error(fmt::format("{}: SeriesInstanceUID {} not found (series here: {})", label, options.series_uid,
                            available.empty() ? "none" : available));
  }
  const SeriesRecord* best = nullptr;
  for (const auto& record : records) {
    if (record.info.num_slices() > 0 &&
        (best == nullptr || record.info.num_slices() > best->info.num_slices()))
      best = &record;
  }
  if (best == nullptr) throw Error(no_image_message(label, result));
  int64_t with_images = 0;
  for (const auto& record : records)
    with_images += record.info.num_slices() > 0 ? 1 : 0;
  if (with_images > 1) {
    spdlog::info(
        "{}: {} image series; reading {} ({} slices, the largest); choose another by SeriesInstanceUID",
        label, with_images, best->info.series_uid, best->info.num_slices());
  }
  return *best;
}

// Decodes the one frame of `h.path` into stored values (bits unpacked, sign extended, MONOCHROME1 inverted).
void decode_slice(const SliceHeader& h, const std::string& series_uid, std::vector<int32_t>& values) {
  DcmFileFormat file;
  const OFCondition loaded = file.loadFile(h.path.c_str());
  if (loaded.bad())
    throw Error(fmt::format("{}: cannot read the DICOM file (DCMTK: {})", h.path, loaded.text()));
  DcmDataset* ds = file.getDataset();
  DcmElement* element = nullptr;
  if (ds->findAndGetElement(DCM_PixelData, element).bad() || element == nullptr ||
      element->ident() != EVR_PixelData) {
    throw Error(fmt::format("{}: PixelData is missing (series {})", h.path, series_uid));
  }
  auto* pixels = OFstatic_cast(DcmPixelData*, element);
  const int64_t count = h.rows * h.columns;
  const int64_t bytes_per_value = h.bits_allocated / 8;
  Uint32 frame_bytes = 0;
  const OFCondition sized = pixels->getUncompressedFrameSize(ds, frame_bytes);
  if (sized.bad() || static_cast<int64_t>(frame_bytes) < count * bytes_per_value) {
    throw Error(fmt::format("{}: PixelData: frame of {} bytes for Rows {} × Columns {} × {} bits ({})",
                            h.path, frame_bytes, h.rows, h.columns, h.bits_allocated, sized.text()));
  }
  std::vector<uint8_t> buffer(frame_bytes);
  Uint32 fragment = 0;
  OFString color_model;
  const OFCondition decoded =
      pixels->getUncompressedFrame(ds, 0, fragment, buffer.data(), frame_bytes, color_model);
  if (decoded.bad()) {
    throw Error(fmt::format("{}: PixelData: cannot decode {} (DCMTK: {})", h.path, h.transfer_syntax,
                            decoded.text()));
  }

  const int shift = static_cast<int>(h.high_bit + 1 - h.bits_stored);
  const uint32_t mask = h.bits_stored >= 32 ? 0xFFFFFFFFu : ((1u << h.bits_stored) - 1u);
  const bool is_signed = h.pixel_representation == 1;
  const int64_t sign_bit = int64_t{1} << (h.bits_stored - 1);
  const bool invert = h.photometric == "MONOCHROME1";
  // MONOCHROME1 shows the lowest value as white; reversing the stored range ((2^bits - 1) - v unsigned,
  // -1 - v signed, i.e. the bitwise complement within BitsStored) makes higher values brighter, as in
  // MONOCHROME2, before any rescale.
  values.resize(static_cast<size_t>(count));
  for (int64_t p = 0; p < count; ++p) {
    uint32_t raw = 0;
    if (bytes_per_value == 1) {
      raw = buffer[static_cast<size_t>(p)];
    } else {
      uint16_t word = 0;
      std::memcpy(&word, buffer.data() + 2 * p, 2);
      raw = word;
    }
    int64_t v = (raw >> shift) & mask;
    if (is_signed && (v & sign_bit)) v -= 2 * sign_bit;
    if (invert) v = is_signed ? -1 - v : static_cast<int64_t>(mask) - v;
    values[static_cast<size_t>(p)] = static_cast<int32_t>(v);
  }
}

at::ScalarType stored_type(const SliceHeader& h) {
  if (h.bits_allocated == 8) return h.pixel_representation == 1 ? at::kChar : at::kByte;
  // LibTorch 1.13 has no uint16; unsigned 16-bit values widen to int32, as for NIfTI.
  return h.pixel_representation == 1 ? at::kShort : at::kInt;
}

template <typename T>
void copy_values(const std::vector<int32_t>& values, T* out) {
  for (size_t p = 0; p < values.size(); ++p)
    out[p] = static_cast<T>(values[p]);
}

Volume assemble(const std::string& label, const SeriesRecord& record, const DicomReadOptions& options) {
  const auto& info = record.info;
  for (const auto& skipped : info.skipped) {
    if (skipped.unreadable) {
      throw Error(fmt::format("{}: {} (series {})", skipped.path, skipped.reason, info.series_uid));
    }
  }
  for (size_t s = 1; s < info.positions_mm.size(); ++s) {
    if (info.positions_mm[s] - info.positions_mm[s - 1] < kSamePositionMm) {
      throw Error(
          fmt::format("{}: series {}: {} and {} share the slice position {:.4f} mm; series with several "
                      "images per position (echoes, time points, diffusion directions) are not supported",
                      label, info.series_uid, file_name(info.files[s - 1]), file_name(info.files[s]),
                      info.positions_mm[s]));
    }
  }
  for (const auto& warning : info.warnings)
    spdlog::warn("{}: series {}: {}", label, info.series_uid, warning);

  const auto& slices = record.slices;
  const SliceHeader& first = slices.front();
  const bool unscaled = std::all_of(slices.begin(), slices.end(), [](const SliceHeader& slice) {
    return slice.slope == 1.0 && slice.intercept == 0.0;
  });
  const bool small_integer = first.bits_allocated <= 16;
  const bool scaled = options.values == VoxelValues::kScaledFloat32 ||
                      (options.values == VoxelValues::kCompact && !(unscaled && small_integer));
  if (!scaled) {
    for (const auto& slice : slices) {
      if (slice.slope != first.slope || slice.intercept != first.intercept) {
        throw Error(fmt::format(
            "{}: RescaleSlope/Intercept {}/{} differ from {}'s {}/{}: stored values need one "
            "scaling for the whole series; read scaled values instead",
            slice.path, slice.slope, slice.intercept, file_name(first.path), first.slope, first.intercept));
      }
    }
  }

  const int64_t columns = first.columns, rows = first.rows, depth = static_cast<int64_t>(slices.size());
  const at::ScalarType dtype = scaled ? at::kFloat : stored_type(first);
  // Slice-major memory, rows within a slice, columns fastest: the pixel buffers' own order.
  at::Tensor buffer = at::empty({depth, rows, columns}, at::dtype(dtype));
  const int64_t per_slice = rows * columns;
  std::vector<int32_t> values;
  for (int64_t k = 0; k < depth; ++k) {
    const SliceHeader& slice = slices[static_cast<size_t>(k)];
    decode_slice(slice, info.series_uid, values);
    if (scaled) {
      float* out = buffer.data_ptr<float>() + k * per_slice;
      for (int64_t p = 0; p < per_slice; ++p)
        out[p] = static_cast<float>(values[static_cast<size_t>(p)] * slice.slope + slice.intercept);
    } else if (dtype == at::kByte) {
      copy_values(values, buffer.data_ptr<uint8_t>() + k * per_slice);
    } else if (dtype == at::kChar) {
      copy_values(values, buffer.data_ptr<int8_t>() + k * per_slice);
    } else if (dtype == at::kShort) {
      copy_values(values, buffer.data_ptr<int16_t>() + k * per_slice);
    } else {
      copy_values(values, buffer.data_ptr<int32_t>() + k * per_slice);
    }
  }

  Volume volume;
  volume.data = buffer.permute({2, 1, 0});
  volume.dims = {columns, rows, depth};
  volume.spacing_mm = {first.pixel_spacing[1], first.pixel_spacing[0], info.slice_spacing_mm};
  volume.stored_dtype = stored_type(first);
  if (!scaled) {
    volume.scale_slope = first.slope;
    volume.scale_inter = first.intercept;
  }
  const auto n = first.normal();
  for (int r = 0; r < 3; ++r) {
    // DICOM patient coordinates are LPS+; RAS+ negates x and y.
    const double flip = r < 2 ? -1.0 : 1.0;
    volume.affine[r][0] = flip * first.iop[r] * first.pixel_spacing[1];
    volume.affine[r][1] = flip * first.iop[3 + r] * first.pixel_spacing[0];
    volume.affine[r][2] = flip * n[r] * info.slice_spacing_mm;
    volume.affine[r][3] = flip * first.ipp[r];
  }
  volume.source_path = label;
  volume.description = info.description;
  return volume;
}

bool ends_with_dcm(const std::string& path) {
  if (path.size() < 4) return false;
  std::string suffix = path.substr(path.size() - 4);
  std::transform(suffix.begin(), suffix.end(), suffix.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return suffix == ".dcm";
}

}  // namespace

namespace detail {

void init_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    // DCMTK logs parser complaints on stderr; hlip reports them in its own messages instead.
    OFLog::configure(OFLogger::OFF_LOG_LEVEL);
    DJDecoderRegistration::registerCodecs();
    DJLSDecoderRegistration::registerCodecs();
    DcmRLEDecoderRegistration::registerCodecs();
  });
  if (!dcmDataDict.isDictionaryLoaded()) {
    throw Error(
        fmt::format("DCMTK: no DICOM data dictionary loaded (DCMDICTPATH is '{}'); set DCMDICTPATH to "
                    "DCMTK's dicom.dic",
                    std::getenv("DCMDICTPATH") ? std::getenv("DCMDICTPATH") : ""));
  }
}

}  // namespace detail

DicomScan scan_dicom(const std::vector<std::string>& paths) {
  return scan_files(paths).scan;
}

Volume read_dicom_series(const std::vector<std::string>& paths, const DicomReadOptions& options,
                         DicomSeriesInfo* info) {
  const std::string label = paths_label(paths);
  const ScanResult result = scan_files(paths);
  const SeriesRecord& record = choose_series(label, result, options);
  if (record.slices.empty()) {
    std::vector<const DicomSkippedFile*> skipped;
    for (const auto& s : record.info.skipped)
      skipped.push_back(&s);
    throw Error(fmt::format("{}: series {} has no usable slice ({})", label, record.info.series_uid,
                            skipped_summary(skipped)));
  }
  Volume volume = assemble(label, record, options);
  if (info != nullptr) *info = record.info;
  return volume;
}

Volume read_dicom_series(const std::string& folder_or_file, const DicomReadOptions& options,
                         DicomSeriesInfo* info) {
  return read_dicom_series(std::vector<std::string>{folder_or_file}, options, info);
}

bool looks_like_dicom(const std::string& path) {
  std::error_code error;
  return fs::is_directory(path, error) || ends_with_dcm(path) || has_dicm_magic(path);
}

}  // namespace hlip::io
