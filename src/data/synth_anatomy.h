#pragma once
// The procedural head shared by the synthetic MRI and CT generators (synth_mri.cpp, synth_ct.cpp): nested
// ellipsoids in head millimetres (RAS: +x is the subject's right), their partial-volume tissue fractions,
// lesion placement by lobe and side, and the voxel centres of an acquisition in head coordinates.

#include <ATen/ATen.h>

#include <array>
#include <string>
#include <vector>

#include "hlip/core/random.h"
#include "hlip/io/volume.h"

namespace hlip::data::anatomy {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;  // rows

Vec3 cross(const Vec3& a, const Vec3& b);
Vec3 normalised(const Vec3& v);  // v / (|v| + 1e-9)

// The normal tissues, the first rows of every generator's component table.
enum Tissue { kScalp, kBone, kCsf, kGrey, kWhite, kTissues };

// R = Rz(yaw) · Rx(pitch) · Ry(roll)
Mat3 rotation(double yaw, double pitch, double roll);

// An ellipsoid in head coordinates: smooth inside-membership with a boundary `width_mm` wide.
struct Ellipsoid {
  Vec3 center{0, 0, 0};
  Vec3 semi_axes{1, 1, 1};
};

at::Tensor axis(const at::Tensor& p, int i);

// Approximate signed distance (mm) to the ellipsoid surface: (normalised radius − 1) · mean semi-axis.
at::Tensor signed_distance(const at::Tensor& p, const Ellipsoid& e);

// Partial-volume membership: 1 well inside (negative distance), 0 well outside.
at::Tensor inside(const at::Tensor& distance_mm, double width_mm = 0.8);

// A lumpy blob: an ellipsoid whose surface is perturbed by a few random low-frequency waves.
struct Blob {
  Ellipsoid shape;
  std::array<Vec3, 4> wave_directions{};
  std::array<double, 4> wave_phases{};
  double roughness_mm = 0;
};

at::Tensor blob_distance(const at::Tensor& p, const Blob& blob, double grow_mm = 0);
Blob random_blob(Random& rng, const Vec3& center, double radius_mm, double roughness_mm);

// The head of one study: shape, size and position vary per study.
struct Head {
  Vec3 center{0, 0, 0};  // world mm
  Mat3 rotation{};       // head → world
  Ellipsoid scalp, skull, csf_space, brain, white;
  Ellipsoid ventricles[2];  // left, right
  double gyral_amplitude_mm = 1.2;
};

Head random_head(Random& rng);

// Fractions [components, N] of every tissue at head-coordinate points p [N, 3]: rows kScalp..kWhite, the
// other rows 0. `brain_points`, when given, are where the brain's own structures (grey and white matter,
// ventricles) are looked up instead of p, which displaces them (mass effect); the brain then stays inside
// the CSF space.
at::Tensor tissue_fractions(const Head& head, const at::Tensor& p, int64_t components,
                            const at::Tensor& brain_points = {});

extern const std::vector<std::string> kLobes;  // frontal, parietal, temporal, occipital

bool in_lobe(const std::string& lobe, const Vec3& p);
bool in_ellipsoid(const Ellipsoid& e, const Vec3& p, double margin = 0);

// A point of the given lobe and side inside the white matter, `margin_mm` away from its boundary and the
// ventricles (rejection sampling; the lobes are large enough that it ends quickly).
Vec3 sample_point(Random& rng, const Head& head, const std::string& lobe, const std::string& side,
                  double margin_mm);

// Acquisition of one scan: grid, spacing, orientation and the voxel → world affine.
struct Acquisition {
  std::array<int64_t, 3> dims{};
  io::Affine affine{};
};

// An in_plane × in_plane × slices grid whose voxel axes are the world directions `i`, `j`, `k` turned by
// `tilt`, centred on the head's centre moved by a few millimetres (three draws from `rng`).
Acquisition tilted_acquisition(Random& rng, const Head& head, const Mat3& tilt, const Vec3& i, const Vec3& j,
                               const Vec3& k, int64_t in_plane, int64_t slices, double in_plane_mm,
                               double slice_mm);

// Head coordinates [I·J·K, 3] (Fortran order: i fastest) of every voxel centre of an acquisition, or of
// slices [first_slice, first_slice + slices) of it when `slices` > 0.
at::Tensor head_points(const Acquisition& acquisition, const Head& head, int64_t first_slice = 0,
                       int64_t slices = 0);

}  // namespace hlip::data::anatomy
