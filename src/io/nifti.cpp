#include "hlip/io/nifti.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <libdeflate.h>
#include <nifti2_io.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/core/files.h"

namespace hlip::io {
namespace {

constexpr int64_t kNifti1HeaderSize = 348;
constexpr int64_t kNifti2HeaderSize = 540;

// nifticlib prints its own diagnostics on stderr; hlip reports failures through exceptions instead.
void quiet_nifticlib() {
  static std::once_flag once;
  std::call_once(once, [] { nifti_set_debug_level(0); });
}

struct DatatypeInfo {
  int code;
  const char* name;
  at::ScalarType dtype;
  int bytes;
};

constexpr DatatypeInfo kDatatypes[] = {
    {DT_UINT8, "uint8", at::kByte, 1},      {DT_INT8, "int8", at::kChar, 1},
    {DT_INT16, "int16", at::kShort, 2},     {DT_UINT16, "uint16", at::kShort, 2},
    {DT_INT32, "int32", at::kInt, 4},       {DT_INT64, "int64", at::kLong, 8},
    {DT_FLOAT32, "float32", at::kFloat, 4}, {DT_FLOAT64, "float64", at::kDouble, 8},
};

// LibTorch 1.13 has no uint16 tensors; such voxels travel as int16 bits and widen to int32 when read.
bool is_uint16(int datatype) {
  return datatype == DT_UINT16;
}

const DatatypeInfo* find_datatype(int code) {
  for (const auto& info : kDatatypes) {
    if (info.code == code) return &info;
  }
  return nullptr;
}

std::string unsupported_datatype_name(int code) {
  switch (code) {
    case DT_BINARY:
      return "binary";
    case DT_COMPLEX64:
      return "complex64";
    case DT_RGB24:
      return "rgb24";
    case DT_UINT32:
      return "uint32";
    case DT_UINT64:
      return "uint64";
    case DT_FLOAT128:
      return "float128";
    case DT_COMPLEX128:
      return "complex128";
    case DT_COMPLEX256:
      return "complex256";
    case DT_RGBA32:
      return "rgba32";
    default:
      return "unknown";
  }
}

// The header fields hlip uses, widened to the NIfTI-2 types. `pixdim_is_float32` remembers that NIfTI-1
// stores float32, whose rounding nibabel's arithmetic inherits.
struct RawHeader {
  int version = 1;
  bool swapped = false;
  std::string magic;
  int16_t datatype = 0;
  int64_t dim[8] = {};
  double pixdim[8] = {};
  int64_t vox_offset = 0;
  double scl_slope = 0, scl_inter = 0;
  int qform_code = 0, sform_code = 0;
  double quatern[3] = {};
  double qoffset[3] = {};
  double srow[3][4] = {};
  int xyzt_units = 0;
  std::string descrip;
};

std::string c_string(const char* chars, size_t max_size) {
  size_t n = 0;
  while (n < max_size && chars[n] != '\0')
    ++n;
  return std::string(chars, n);
}

std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 32 && c < 127) {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}
// The fields NIfTI-1 and NIfTI-2 headers share under the same names (types differ: float vs double, short
// vs int64), converted into the version-independent RawHeader.
template <typename Header>
void copy_common_fields(const Header& h, RawHeader& raw) {
  raw.magic = c_string(h.magic, 4);
  raw.datatype = h.datatype;
  for (int i = 0; i < 8; ++i) {
    raw.dim[i] = h.dim[i];
    raw.pixdim[i] = h.pixdim[i];
  }
  raw.scl_slope = h.scl_slope;
  raw.scl_inter = h.scl_inter;
  raw.qform_code = h.qform_code;
  raw.sform_code = h.sform_code;
  raw.quatern[0] = h.quatern_b;
  raw.quatern[1] = h.quatern_c;
  raw.quatern[2] = h.quatern_d;
  raw.qoffset[0] = h.qoffset_x;
  raw.qoffset[1] = h.qoffset_y;
  raw.qoffset[2] = h.qoffset_z;
  for (int c = 0; c < 4; ++c) {
    raw.srow[0][c] = h.srow_x[c];
    raw.srow[1][c] = h.srow_y[c];
    raw.srow[2][c] = h.srow_z[c];
  }
  raw.xyzt_units = h.xyzt_units;
  raw.descrip = c_string(h.descrip, sizeof h.descrip);
}

RawHeader decode_raw(const void* bytes, size_t size, const std::string& path) {
  if (size < 4) throw Error(fmt::format("{}: not a NIfTI file: only {} bytes", path, size));
  int32_t sizeof_hdr = 0;
  std::memcpy(&sizeof_hdr, bytes, 4);
  const int32_t swapped_sizeof_hdr =
      static_cast<int32_t>(__builtin_bswap32(static_cast<uint32_t>(sizeof_hdr)));
  RawHeader raw;
  if (sizeof_hdr == kNifti1HeaderSize || swapped_sizeof_hdr == kNifti1HeaderSize) {
    raw.version = 1;
  } else if (sizeof_hdr == kNifti2HeaderSize || swapped_sizeof_hdr == kNifti2HeaderSize) {
    raw.version = 2;
  } else {
    throw Error(fmt::format("{}: not a NIfTI file: sizeof_hdr is {}, expected 348 (NIfTI-1) or 540 (NIfTI-2)",
                            path, sizeof_hdr));
  }
  raw.swapped = sizeof_hdr != kNifti1HeaderSize && sizeof_hdr != kNifti2HeaderSize;
  const size_t needed = raw.version == 1 ? kNifti1HeaderSize : kNifti2HeaderSize;
  if (size < needed) {
    throw Error(
        fmt::format("{}: truncated NIfTI-{} header: {} of {} bytes", path, raw.version, size, needed));
  }
  if (raw.version == 1) {
    nifti_1_header h;
    std::memcpy(&h, bytes, sizeof h);
    if (raw.swapped) swap_nifti_header(&h, 1);
    copy_common_fields(h, raw);
    // NIfTI-1 stores vox_offset as a float; whole numbers are exact up to 2^24. A value no file offset can
    // have is refused here, before converting it to an integer would be undefined.
    if (!(h.vox_offset >= 0.0f && h.vox_offset < 0x1p62f)) {
      throw Error(fmt::format("{}: vox_offset is {}", path, h.vox_offset));
    }
    raw.vox_offset = static_cast<int64_t>(h.vox_offset);
  } else {
    nifti_2_header h;
    std::memcpy(&h, bytes, sizeof h);
    if (raw.swapped) swap_nifti_header(&h, 2);
    copy_common_fields(h, raw);
    raw.vox_offset = h.vox_offset;
  }
  return raw;
}

// nibabel's get_qform(): quaternion → rotation in extended precision (numpy's longdouble, which is
// x87 80-bit here as in C++), then R · diag(pixdim[1], pixdim[2], qfac · pixdim[3]), rounded to double.
Affine qform_affine(const RawHeader& raw, const double zooms[3], double qfac, const std::string& path) {
  using ld = long double;
  const ld b = raw.quatern[0], c = raw.quatern[1], d = raw.quatern[2];
  ld sum = 0.0L;
  sum += b * b;
  sum += c * c;
  sum += d * d;
  const ld w2 = 1.0L - sum;
  const ld threshold = raw.version == 1 ? -3.0L * FLT_EPSILON : -3.0L * DBL_EPSILON;
  ld w = 0.0L;
  if (w2 < 0) {
    if (w2 < threshold) {
      throw Error(fmt::format("{}: quatern_b/c/d ({}, {}, {}) is not a unit quaternion: b²+c²+d² = {}", path,
                              raw.quatern[0], raw.quatern[1], raw.quatern[2], static_cast<double>(sum)));
    }
  } else {
    w = std::sqrt(w2);
  }
  const ld x = b, y = c, z = d;
  ld rotation[3][3];
  const ld nq = w * w + x * x + y * y + z * z;
  if (nq < DBL_EPSILON) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j)
        rotation[i][j] = i == j ? 1.0L : 0.0L;
    }
  } else {
    const ld s = 2.0L / nq;
    const ld X = x * s, Y = y * s, Z = z * s;
    const ld wX = w * X, wY = w * Y, wZ = w * Z;
    const ld xX = x * X, xY = x * Y, xZ = x * Z;
    const ld yY = y * Y, yZ = y * Z, zZ = z * Z;
    const ld r[3][3] = {{1.0L - (yY + zZ), xY - wZ, xZ + wY},
                        {xY + wZ, 1.0L - (xX + zZ), yZ - wX},
                        {xZ - wY, yZ + wX, 1.0L - (xX + yY)}};
    std::memcpy(rotation, r, sizeof r);
  }
  // vox[-1] *= qfac happens in the header's own precision (float32 for NIfTI-1).
  double vox[3] = {zooms[0], zooms[1], zooms[2]};
  vox[2] = raw.version == 1 ? static_cast<double>(static_cast<float>(vox[2]) * static_cast<float>(qfac))
                            : vox[2] * qfac;
  Affine affine = identity_affine();
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 3; ++j) {
      // numpy's longdouble dot: a running sum from 0 over the row; the zero terms keep its signed zeros.
      ld acc = 0.0L;
      for (int k = 0; k < 3; ++k)
        acc += rotation[i][k] * (k == j ? static_cast<ld>(vox[j]) : 0.0L);
      affine[i][j] = static_cast<double>(acc);
    }
    affine[i][3] = raw.qoffset[i];
  }
  return affine;
}

// nibabel's get_base_affine() (Analyze): diag(-zoom_x, zoom_y, zoom_z) with the origin at the grid centre.
Affine base_affine(const RawHeader& raw, const double zooms[3]) {
  const int64_t ndim = raw.dim[0];
  Affine affine = identity_affine();
  for (int a = 0; a < 3; ++a) {
    const double extent = a < ndim ? static_cast<double>(raw.dim[a + 1]) : 1.0;
    const double zoom = a < ndim ? zooms[a] : 1.0;
    const double signed_zoom = a == 0 ? -zoom : zoom;
    const double origin = (extent - 1.0) / 2.0;
    affine[a][a] = signed_zoom;
    affine[a][3] = -origin * signed_zoom;
  }
  return affine;
}

bool valid_xform_code(int code) {
  return code >= 0 && code <= 5;
}

class NiftiImage {
 public:
  explicit NiftiImage(nifti_image* image) : image_(image) {}
  ~NiftiImage() {
    if (image_ != nullptr) {
      image_->data = nullptr;  // never owned by nifticlib here
      nifti_image_free(image_);
    }
  }
  NiftiImage(const NiftiImage&) = delete;
  NiftiImage& operator=(const NiftiImage&) = delete;
  nifti_image* get() const { return image_; }

 private:
  nifti_image* image_;
};

std::string dims_string(const std::vector<int64_t>& dims) {
  return fmt::format("{}", fmt::join(dims, "×"));
}

// Whether the file starts with the gzip magic: compression is decided by content, not by the name.
bool starts_with_gzip_magic(const std::string& path) {
  unsigned char magic[2] = {0, 0};
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return false;
  const size_t n = std::fread(magic, 1, 2, file);
  std::fclose(file);
  return n == 2 && magic[0] == 0x1f && magic[1] == 0x8b;
}

// A NIfTI file opened for reading through nifticlib's znz layer (plain or gzip), read front to back.
class NiftiReader {
 public:
  explicit NiftiReader(const std::string& path) : path_(path) {
    struct stat info {};
    if (::stat(path.c_str(), &info) != 0) {
      throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    }
    if (S_ISDIR(info.st_mode)) throw Error(fmt::format("{}: is a directory, not a NIfTI file", path));
    gz_ = starts_with_gzip_magic(path);
    file_ = znzopen(path.c_str(), "rb", gz_ ? 1 : 0);
    if (znz_isnull(file_)) throw Error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  }
  ~NiftiReader() { znzclose(file_); }
  NiftiReader(const NiftiReader&) = delete;
  NiftiReader& operator=(const NiftiReader&) = delete;

  bool gz() const { return gz_; }

  // Reads up to `size` bytes into `out`; returns how many it got (fewer at the end of the data).
  int64_t read(void* out, int64_t size) {
    auto* p = static_cast<unsigned char*>(out);
    int64_t got = 0;
    while (got < size) {
      const size_t want = static_cast<size_t>(size - got);
      const size_t n = znzread(p + got, 1, want, file_);
      if (n == 0) break;
      // znzread passes zlib's -1 for a corrupt gzip stream through as a huge size_t; taking it as a count
      // would walk `got` backwards forever.
      if (n > want) {
        throw Error(fmt::format("{}: corrupt gzip data: zlib failed after {} decompressed bytes", path_,
                                position_ + got));
      }
      got += static_cast<int64_t>(n);
    }
    position_ += got;
    return got;
  }

  // Decodes the header: the NIfTI-1 size first, then the rest when sizeof_hdr says NIfTI-2.
  NiftiHeader header() {
    unsigned char bytes[kNifti2HeaderSize];
    int64_t size = read(bytes, kNifti1HeaderSize);
    int32_t sizeof_hdr = 0;
    std::memcpy(&sizeof_hdr, bytes, sizeof sizeof_hdr);
    if (size == kNifti1HeaderSize &&
        (sizeof_hdr == kNifti2HeaderSize ||
         static_cast<int32_t>(__builtin_bswap32(sizeof_hdr)) == kNifti2HeaderSize)) {
      size += read(bytes + size, kNifti2HeaderSize - kNifti1HeaderSize);
    }
    return decode_nifti_header(bytes, static_cast<size_t>(size), path_);
  }

  // Moves forward to byte `offset` of the (uncompressed) file; false when the data ends first.
  bool skip_to(int64_t offset) {
    if (offset < position_) return false;
    if (znzseek(file_, static_cast<znz_off_t>(offset), SEEK_SET) < 0) return false;
    position_ = offset;
    return true;
  }

 private:
  std::string path_;
  bool gz_ = false;
  znzFile file_ = nullptr;
  int64_t position_ = 0;
};

// The whole of a gzip file (every member) inflated by libdeflate into exactly `size` bytes, or an undefined
// tensor when that does not work out (unreadable, corrupt or truncated data, another length, bytes after
// the last member). The caller then reads through zlib's stream, whose errors say where the data went wrong.
at::Tensor inflate_whole_gzip(const std::string& path, int64_t size) {
  std::vector<unsigned char> compressed;
  {
    std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), &std::fclose);
    if (!file) return {};
    unsigned char chunk[1 << 16];
    for (size_t n; (n = std::fread(chunk, 1, sizeof chunk, file.get())) > 0;)
      compressed.insert(compressed.end(), chunk, chunk + n);
    if (std::ferror(file.get())) return {};
  }
  std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> decompressor(
      libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
  if (!decompressor) return {};
  at::Tensor out = at::empty({size}, at::kByte);
  auto* dst = out.data_ptr<uint8_t>();
  size_t in_pos = 0, out_pos = 0;
  while (in_pos < compressed.size()) {
    size_t in_used = 0, out_used = 0;
    const libdeflate_result result = libdeflate_gzip_decompress_ex(
        decompressor.get(), compressed.data() + in_pos, compressed.size() - in_pos, dst + out_pos,
        static_cast<size_t>(size) - out_pos, &in_used, &out_used);
    if (result != LIBDEFLATE_SUCCESS || in_used == 0) return {};
    in_pos += in_used;
    out_pos += out_used;
  }
  return out_pos == static_cast<size_t>(size) ? out : at::Tensor();
}

// One pass over the file-ordered voxels: value = Work(x) · slope + inter, rounded to float32. The product and
// the sum round separately, as numpy's two array operations do, so contraction into an FMA is turned off.
template <typename In, typename Work, bool kMul, bool kAdd>
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
void scale_range(const In* in, float* out, int64_t begin, int64_t end, Work slope, Work inter) {
#if defined(__clang__)
#pragma clang fp contract(off)
#endif
  for (int64_t n = begin; n < end; ++n) {
    Work v = static_cast<Work>(in[n]);
    if constexpr (kMul) v = v * slope;
    if constexpr (kAdd) v = v + inter;
    out[n] = static_cast<float>(v);
  }
}

template <typename In, typename Work>
void scale_all(const void* in, float* out, int64_t count, Work slope, Work inter) {
  const auto* src = static_cast<const In*>(in);
  const bool mul = slope != Work(1), add = inter != Work(0);
  at::parallel_for(0, count, int64_t{1} << 16, [&](int64_t begin, int64_t end) {
    if (mul && add) {
      scale_range<In, Work, true, true>(src, out, begin, end, slope, inter);
    } else if (mul) {
      scale_range<In, Work, true, false>(src, out, begin, end, slope, inter);
    } else if (add) {
      scale_range<In, Work, false, true>(src, out, begin, end, slope, inter);
    } else {
      scale_range<In, Work, false, false>(src, out, begin, end, slope, inter);
    }
  });
}

template <typename In>
void scale_as(const void* in, float* out, int64_t count, bool work_in_double, double slope, double inter) {
  if (work_in_double) {
    scale_all<In, double>(in, out, count, slope, inter);
  } else {
    scale_all<In, float>(in, out, count, static_cast<float>(slope), static_cast<float>(inter));
  }
}

// Whether nibabel applies scl_slope / scl_inter: not for a slope of 0 or NaN, nor for the identity (1, 0).
bool scaling_applies(double slope, double inter) {
  return std::isfinite(slope) && slope != 0.0 && !(slope == 1.0 && inter == 0.0);
}

// nibabel's get_fdata(dtype=np.float32) from the file-ordered voxel buffer: scale factors rounded to float32,
// arithmetic in float32 for 8/16-bit integer and float32 voxels, in float64 for int32/int64/float64 voxels
// (numpy promotes int32 × float32 arrays to float64), one rounding to float32 at the end.
at::Tensor scale_to_float32(const at::Tensor& file_order, int datatype, double slope, double inter) {
  const bool has_scaling = scaling_applies(slope, inter);
  const bool slope_fits_float = std::fabs(slope) <= FLT_MAX;
  const bool inter_fits_float = std::fabs(inter) <= FLT_MAX;
  const double s = !has_scaling       ? 1.0
                   : slope_fits_float ? static_cast<double>(static_cast<float>(slope))
                                      : slope;
  const double i = !has_scaling       ? 0.0
                   : inter_fits_float ? static_cast<double>(static_cast<float>(inter))
                                      : inter;
  bool work_in_double = !slope_fits_float || !inter_fits_float || datatype == DT_INT32 ||
                        datatype == DT_INT64 || datatype == DT_FLOAT64;
  if (has_scaling && !work_in_double && datatype != DT_FLOAT32) {
    // nibabel's int_scinter_ftype: widen when the integer range would overflow float32 after scaling.
    double lo = 0, hi = 0;
    switch (datatype) {
      case DT_UINT8:
        lo = 0, hi = 255;
        break;
      case DT_INT8:
        lo = -128, hi = 127;
        break;
      case DT_INT16:
        lo = -32768, hi = 32767;
        break;
      case DT_UINT16:
        lo = 0, hi = 65535;
        break;
      default:
        break;
    }
    for (double v : {lo, hi}) {
      const float scaled = static_cast<float>(v) * static_cast<float>(s) + static_cast<float>(i);
      if (!std::isfinite(scaled)) work_in_double = true;
    }
  }
  at::Tensor out = at::empty(file_order.sizes(), at::dtype(at::kFloat));
  const void* in = file_order.data_ptr();
  float* dst = out.data_ptr<float>();
  const int64_t n = file_order.numel();
  switch (datatype) {
    case DT_UINT8:
      scale_as<uint8_t>(in, dst, n, work_in_double, s, i);
      break;
    case DT_INT8:
      scale_as<int8_t>(in, dst, n, work_in_double, s, i);
      break;
    case DT_INT16:
      scale_as<int16_t>(in, dst, n, work_in_double, s, i);
      break;
    case DT_UINT16:
      scale_as<uint16_t>(in, dst, n, work_in_double, s, i);
      break;
    case DT_INT32:
      scale_as<int32_t>(in, dst, n, work_in_double, s, i);
      break;
    case DT_INT64:
      scale_as<int64_t>(in, dst, n, work_in_double, s, i);
      break;
    case DT_FLOAT32:
      scale_as<float>(in, dst, n, work_in_double, s, i);
      break;
    case DT_FLOAT64:
      scale_as<double>(in, dst, n, work_in_double, s, i);
      break;
    default:
      throw Error(fmt::format("internal: no float32 conversion for NIfTI datatype {}", datatype));
  }
  return out;
}

}  // namespace

int64_t NiftiHeader::num_volumes() const {
  return dims.size() >= 4 ? dims[3] : 1;
}

NiftiHeader decode_nifti_header(const void* bytes, size_t size, const std::string& path) {
  const RawHeader raw = decode_raw(bytes, size, path);
  NiftiHeader header;
  header.path = path;
  header.version = raw.version;
  header.byte_swapped = raw.swapped;

  const std::string single_magic = raw.version == 1 ? "n+1" : "n+2";
  const std::string pair_magic = raw.version == 1 ? "ni1" : "ni2";
  if (raw.magic == pair_magic) {
    throw Error(fmt::format("{}: magic '{}' marks a .hdr/.img pair; hlip reads single-file .nii only", path,
                            raw.magic));
  }
  if (raw.magic != single_magic) {
    throw Error(fmt::format("{}: magic is '{}', expected '{}' (NIfTI-{})", path, printable(raw.magic),
                            single_magic, raw.version));
  }

  const int64_t ndim = raw.dim[0];
  if (ndim < 1 || ndim > 7) throw Error(fmt::format("{}: dim[0] is {}, expected 1 to 7", path, ndim));
  for (int64_t a = 1; a <= ndim; ++a) {
    if (raw.dim[a] < 1) throw Error(fmt::format("{}: dim[{}] is {}, expected >= 1", path, a, raw.dim[a]));
    header.dims.push_back(raw.dim[a]);
  }

  const DatatypeInfo* type = find_datatype(raw.datatype);
  if (type == nullptr) {
    throw Error(
        fmt::format("{}: datatype {} ({}) is not supported; hlip reads uint8, int8, int16, uint16, "
                    "int32, int64, float32, float64",
                    path, raw.datatype, unsupported_datatype_name(raw.datatype)));
  }
  header.datatype = type->code;
  header.datatype_name = type->name;
  header.dtype = is_uint16(type->code) ? at::kInt : type->dtype;

  int64_t bytes_total = type->bytes;
  for (int64_t extent : header.dims) {
    if (__builtin_mul_overflow(bytes_total, extent, &bytes_total)) {
      throw Error(
          fmt::format("{}: dims {} of {} overflow 64-bit sizes", path, dims_string(header.dims), type->name));
    }
  }

  // nibabel's header fixes on load: pixdim[1..3] of 0 become 1, negative ones their absolute value.
  // hlip refuses 0 and non-finite spacing along the dims the image has (a 2D image has no pixdim[3]).
  double zooms[3];
  for (int a = 0; a < 3; ++a) {
    const double p = raw.pixdim[a + 1];
    if (a < ndim && (!std::isfinite(p) || p == 0.0)) {
      throw Error(fmt::format("{}: pixdim[{}] (voxel spacing) is {}", path, a + 1, p));
    }
    zooms[a] = p == 0.0 ? 1.0 : std::fabs(p);
  }
  for (int64_t a = 1; a <= ndim; ++a) {
    const double p = raw.pixdim[a];
    header.pixdim.push_back(a <= 3 ? zooms[a - 1] : p);
  }

  header.scl_slope = raw.scl_slope;
  header.scl_inter = raw.scl_inter;
  if (std::isfinite(raw.scl_slope) && raw.scl_slope != 0.0 && !std::isfinite(raw.scl_inter)) {
    throw Error(fmt::format("{}: scl_inter is {} with scl_slope {}", path, raw.scl_inter, raw.scl_slope));
  }

  header.qform_code = valid_xform_code(raw.qform_code) ? raw.qform_code : 0;
  header.sform_code = valid_xform_code(raw.sform_code) ? raw.sform_code : 0;
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c)
      header.sform[r][c] = raw.srow[r][c];
  }
  const double qfac = raw.pixdim[0] == -1.0 ? -1.0 : 1.0;
  header.qform = qform_affine(raw, zooms, qfac, path);
  if (header.sform_code != 0) {
    header.affine = header.sform;
  } else if (header.qform_code != 0) {
    header.affine = header.qform;
  } else {
    header.affine = base_affine(raw, zooms);
  }
  for (const auto& row : header.affine) {
    for (double v : row) {
      if (!std::isfinite(v)) {
        throw Error(fmt::format("{}: the {} affine has a non-finite entry {}", path,
                                header.sform_code ? "sform" : (header.qform_code ? "qform" : "base"), v));
      }
    }
  }

  const int64_t min_offset = raw.version == 1 ? 352 : 544;
  if (raw.vox_offset < 0) throw Error(fmt::format("{}: vox_offset is {}", path, raw.vox_offset));
  header.vox_offset = std::max(raw.vox_offset, min_offset);
  header.xyz_units = raw.xyzt_units & 0x07;
  header.description = raw.descrip;
  return header;
}

NiftiHeader read_nifti_header(const std::string& path) {
  return NiftiReader(path).header();
}

Volume read_nifti(const std::string& path, const NiftiReadOptions& options) {
  NiftiReader reader(path);
  const NiftiHeader header = reader.header();
  const auto& dims = header.dims;
  for (size_t a = 4; a < dims.size(); ++a) {
    if (dims[a] != 1) {
      throw Error(fmt::format("{}: dim[{}] is {} (dims {}); hlip reads 3D and 4D images only", path, a + 1,
                              dims[a], dims_string(dims)));
    }
  }
  const int64_t volumes = header.num_volumes();
  if (options.volume < 0 || options.volume >= volumes) {
    throw Error(fmt::format("{}: volume {} is out of range: dim[4] is {} ({} volume{})", path, options.volume,
                            volumes, volumes, volumes == 1 ? "" : "s"));
  }

  // What the header asks for is checked against the file before the voxel buffer is allocated. A short
  // uncompressed file is caught with its sizes; a gzip stream cannot inflate to more than 1032 times its size
  // (deflate's largest ratio), which bounds what a tiny .nii.gz can make hlip allocate.
  int64_t data_bytes = find_datatype(header.datatype)->bytes;
  for (int64_t extent : dims) {
    data_bytes *= extent;  // decode_nifti_header refused products that overflow
  }
  int64_t needed = 0;
  if (__builtin_add_overflow(header.vox_offset, data_bytes, &needed)) {
    throw Error(fmt::format("{}: vox_offset {} plus {} bytes of voxels overflow 64-bit sizes", path,
                            header.vox_offset, data_bytes));
  }
  std::error_code error;
  const auto file_size = static_cast<int64_t>(std::filesystem::file_size(path, error));
  if (!error && !reader.gz() && file_size < needed) {
    throw Error(fmt::format("{}: truncated: the file has {} bytes, its header ({} {}, offset {}) needs {}",
                            path, file_size, dims_string(dims), header.datatype_name, header.vox_offset,
                            needed));
  }
  constexpr int64_t kMaxDeflateRatio = 1032;
  if (!error && reader.gz() && needed / kMaxDeflateRatio > file_size) {
    throw Error(
        fmt::format("{}: truncated: a {}-byte gzip file cannot inflate to the {} bytes its header ({} {}, "
                    "offset {}) needs",
                    path, file_size, needed, dims_string(dims), header.datatype_name, header.vox_offset));
  }

  Volume volume;
  for (int a = 0; a < 3; ++a) {
    volume.dims[a] = a < static_cast<int>(dims.size()) ? dims[a] : 1;
    volume.spacing_mm[a] = a < static_cast<int>(header.pixdim.size()) ? header.pixdim[a] : 1.0;
  }

  // The voxels are read through nifticlib's znz layer rather than nifti_read_collapsed_image, which
  // silently replaces NaN and ±Inf float voxels with 0: nibabel keeps them, and so does hlip.
  const int datatype = header.datatype;
  const DatatypeInfo* type = find_datatype(datatype);
  const std::vector<int64_t> sizes = {volume.dims[2], volume.dims[1], volume.dims[0]};
  const int64_t expected = volume.dims[0] * volume.dims[1] * volume.dims[2] * type->bytes;
  const int64_t offset = header.vox_offset + options.volume * expected;
  at::Tensor buffer;
  // A .nii.gz whose voxels are mostly wanted is inflated whole by libdeflate (25 ms where zlib takes 43);
  // a long 4D series of which one volume is read still streams through zlib, which stops at that volume.
  constexpr int64_t kWholeFileBytes = int64_t{256} << 20;
  if (reader.gz() && needed <= std::max(2 * (offset + expected), kWholeFileBytes)) {
    at::Tensor whole = inflate_whole_gzip(path, needed);
    if (whole.defined() && offset % type->bytes == 0) {
      buffer = at::from_blob(
          whole.data_ptr<uint8_t>() + offset, sizes, [whole](void*) {}, at::dtype(type->dtype));
    } else if (whole.defined()) {
      buffer = at::empty(sizes, at::dtype(type->dtype));
      std::memcpy(buffer.data_ptr(), whole.data_ptr<uint8_t>() + offset, static_cast<size_t>(expected));
    }
  }
  int64_t got = expected;
  if (!buffer.defined()) {
    buffer = at::empty(sizes, at::dtype(type->dtype));
    got = reader.skip_to(offset) ? reader.read(buffer.data_ptr(), expected) : 0;
  }
  if (got != expected) {
    throw Error(
        fmt::format("{}: truncated or unreadable voxel data: read {} of {} bytes of volume {} at offset {} "
                    "(dims {}, {})",
                    path, got, expected, options.volume, offset, dims_string(dims), header.datatype_name));
  }
  if (header.byte_swapped && type->bytes > 1) {
    nifti_swap_Nbytes(buffer.numel(), type->bytes, buffer.data_ptr());
  }
  volume.stored_dtype = header.dtype;
  const bool small_integer =
      datatype == DT_UINT8 || datatype == DT_INT8 || datatype == DT_INT16 || is_uint16(datatype);
  const bool as_float = options.values == VoxelValues::kScaledFloat32 ||
                        (options.values == VoxelValues::kCompact &&
                         (!small_integer || scaling_applies(header.scl_slope, header.scl_inter)));
  if (as_float) {
    volume.data = scale_to_float32(buffer, datatype, header.scl_slope, header.scl_inter).permute({2, 1, 0});
  } else {
    if (is_uint16(datatype)) buffer = buffer.to(at::kInt).bitwise_and_(0xFFFF);
    volume.data = buffer.permute({2, 1, 0});
    if (options.values == VoxelValues::kStored && std::isfinite(header.scl_slope) &&
        header.scl_slope != 0.0) {
      volume.scale_slope = header.scl_slope;
      volume.scale_inter = header.scl_inter;
    }
  }
  if (options.require_finite && volume.data.is_floating_point()) {
    const at::Tensor bad = at::logical_not(at::isfinite(volume.data));
    if (bad.any().item<bool>()) {
      const at::Tensor first = bad.nonzero()[0];
      const int64_t i = first[0].item<int64_t>(), j = first[1].item<int64_t>(), k = first[2].item<int64_t>();
      throw Error(fmt::format("{}: voxel ({}, {}, {}) of volume {} is {} ({} non-finite voxels)", path, i, j,
                              k, options.volume, volume.data[i][j][k].item<double>(),
                              bad.sum().item<int64_t>()));
    }
  }
  volume.affine = header.affine;
  volume.source_path = path;
  volume.description = header.description;
  return volume;
}

void write_nifti(const std::string& path, const at::Tensor& data, const Affine& affine,
                 const NiftiWriteOptions& options) {
  quiet_nifticlib();
  int datatype = 0;
  switch (data.scalar_type()) {
    case at::kFloat:
      datatype = DT_FLOAT32;
      break;
    case at::kByte:
      datatype = DT_UINT8;
      break;
    case at::kShort:
      datatype = DT_INT16;
      break;
    default:
      throw Error(fmt::format("{}: cannot write {} voxels; NIfTI output takes float32, uint8 or int16", path,
                              c10::toString(data.scalar_type())));
  }
  if (data.dim() != 3 && data.dim() != 4) {
    throw Error(fmt::format("{}: cannot write a {}-dim tensor; NIfTI output takes [I, J, K] or [I, J, K, T]",
                            path, data.dim()));
  }
  if (options.version != 1 && options.version != 2) {
    throw Error(fmt::format("{}: NIfTI version {} does not exist (1 or 2)", path, options.version));
  }
  for (int64_t a = 0; a < data.dim(); ++a) {
    if (data.size(a) < 1 || (options.version == 1 && data.size(a) > 32767)) {
      throw Error(fmt::format("{}: dimension {} is {}, outside what NIfTI-{} stores", path, a, data.size(a),
                              options.version));
    }
  }
  for (const auto& row : affine) {
    for (double v : row) {
      if (!std::isfinite(v)) throw Error(fmt::format("{}: the affine has a non-finite entry {}", path, v));
    }
  }

  int64_t dims[8] = {data.dim(), 1, 1, 1, 1, 1, 1, 1};
  for (int64_t a = 0; a < data.dim(); ++a)
    dims[a + 1] = data.size(a);
  NiftiImage image(nifti_make_new_nim(dims, datatype, 0));
  nifti_image* nim = image.get();
  if (nim == nullptr) throw Error(fmt::format("{}: nifticlib could not create an image header", path));

  nifti_dmat44 m;
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 4; ++c)
      m.m[r][c] = affine[r][c];
  }
  double qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac;
  nifti_dmat44_to_quatern(m, &qb, &qc, &qd, &qx, &qy, &qz, &dx, &dy, &dz, &qfac);
  nim->quatern_b = qb;
  nim->quatern_c = qc;
  nim->quatern_d = qd;
  nim->qoffset_x = qx;
  nim->qoffset_y = qy;
  nim->qoffset_z = qz;
  nim->qfac = qfac;
  nim->dx = nim->pixdim[1] = dx;
  nim->dy = nim->pixdim[2] = dy;
  nim->dz = nim->pixdim[3] = dz;
  nim->qform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->sform_code = NIFTI_XFORM_SCANNER_ANAT;
  nim->qto_xyz = nifti_quatern_to_dmat44(qb, qc, qd, qx, qy, qz, dx, dy, dz, qfac);
  nim->sto_xyz = m;
  nim->xyz_units = NIFTI_UNITS_MM;
  nim->time_units = NIFTI_UNITS_SEC;
  nim->scl_slope = 1.0;
  nim->scl_inter = 0.0;
  std::snprintf(nim->descrip, sizeof nim->descrip, "%s", options.description.c_str());
  nim->nifti_type = options.version == 1 ? NIFTI_FTYPE_NIFTI1_1 : NIFTI_FTYPE_NIFTI2_1;
  nim->iname_offset = options.version == 1 ? 352 : 544;

  unsigned char header_bytes[kNifti2HeaderSize + 4] = {};
  size_t header_size = 0;
  if (options.version == 1) {
    nifti_1_header h;
    if (nifti_convert_nim2n1hdr(nim, &h) != 0) {
      throw Error(fmt::format("{}: nifticlib could not build the NIfTI-1 header", path));
    }
    std::memcpy(header_bytes, &h, sizeof h);
    header_size = sizeof h + 4;  // + the 4-byte extension flag, all zero: no extensions
  } else {
    nifti_2_header h;
    if (nifti_convert_nim2n2hdr(nim, &h) != 0) {
      throw Error(fmt::format("{}: nifticlib could not build the NIfTI-2 header", path));
    }
    std::memcpy(header_bytes, &h, sizeof h);
    header_size = sizeof h + 4;
  }

  // The voxels in the file's order: i fastest, i.e. the [K, J, I] C-ordered tensor.
  at::Tensor fortran = data.dim() == 3 ? data.permute({2, 1, 0}) : data.permute({3, 2, 1, 0});
  fortran = fortran.contiguous();
  if (fortran.device().type() != at::kCPU) fortran = fortran.cpu();
  const size_t data_bytes = static_cast<size_t>(fortran.numel() * fortran.element_size());

  PendingFile pending(path);
  const std::string& temp = pending.path();
  const bool gz = nifti_is_gzfile(path.c_str()) != 0;
  znzFile file = znzopen(temp.c_str(), "wb", gz ? 1 : 0);
  if (znz_isnull(file)) {
    throw Error(fmt::format("{}: cannot create temporary file {}: {}", path, temp, std::strerror(errno)));
  }
  bool ok = znzwrite(header_bytes, 1, header_size, file) == header_size;
  // znzwrite takes at most INT_MAX bytes per call through zlib; write in chunks.
  const auto* p = static_cast<const unsigned char*>(fortran.data_ptr());
  for (size_t done = 0; ok && done < data_bytes;) {
    const size_t chunk = std::min<size_t>(data_bytes - done, size_t{1} << 30);
    ok = znzwrite(p + done, 1, chunk, file) == chunk;
    done += chunk;
  }
  const int close_status = Xznzclose(&file);
  if (!ok || close_status != 0) {
    throw Error(
        fmt::format("{}: write failed ({} bytes of voxels): {}", path, data_bytes, std::strerror(errno)));
  }
  pending.commit();
}

void write_nifti(const std::string& path, const Volume& volume, const NiftiWriteOptions& options) {
  NiftiWriteOptions effective = options;
  if (effective.description.empty()) effective.description = volume.description;
  write_nifti(path, volume.data, volume.affine, effective);
}

}  // namespace hlip::io
