// The procedural head shared by the synthetic MRI and CT generators.
#include "synth_anatomy.h"

#include <fmt/format.h>

#include <cmath>

#include "hlip/core/error.h"

namespace hlip::data::anatomy {

Mat3 rotation(double yaw, double pitch, double roll) {
  const double cy = std::cos(yaw), sy = std::sin(yaw), cp = std::cos(pitch), sp = std::sin(pitch);
  const double cr = std::cos(roll), sr = std::sin(roll);
  // R = Rz(yaw) · Rx(pitch) · Ry(roll)
  const Mat3 rz{{{cy, -sy, 0}, {sy, cy, 0}, {0, 0, 1}}};
  const Mat3 rx{{{1, 0, 0}, {0, cp, -sp}, {0, sp, cp}}};
  const Mat3 ry{{{cr, 0, sr}, {0, 1, 0}, {-sr, 0, cr}}};
  auto mul = [](const Mat3& a, const Mat3& b) {
    Mat3 c{};
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j)
        for (int k = 0; k < 3; ++k)
          c[i][j] += a[i][k] * b[k][j];
    return c;
  };
  return mul(mul(rz, rx), ry);
}

at::Tensor axis(const at::Tensor& p, int i) {
  return p.select(1, i);
}

// Approximate signed distance (mm) to the ellipsoid surface: (normalised radius − 1) · mean semi-axis.
at::Tensor signed_distance(const at::Tensor& p, const Ellipsoid& e) {
  at::Tensor r2 = at::zeros({p.size(0)}, p.options());
  for (int i = 0; i < 3; ++i)
    r2 = r2 + at::square((axis(p, i) - e.center[i]) / e.semi_axes[i]);
  const double mean_axis = (e.semi_axes[0] + e.semi_axes[1] + e.semi_axes[2]) / 3.0;
  return (at::sqrt(r2) - 1.0) * mean_axis;
}

at::Tensor inside(const at::Tensor& distance_mm, double width_mm) {
  return at::sigmoid(-distance_mm / width_mm);
}

at::Tensor blob_distance(const at::Tensor& p, const Blob& blob, double grow_mm) {
  at::Tensor d = signed_distance(p, blob.shape) - grow_mm;
  for (size_t w = 0; w < blob.wave_directions.size(); ++w) {
    at::Tensor projection = at::zeros({p.size(0)}, p.options());
    for (int i = 0; i < 3; ++i)
      projection = projection + (axis(p, i) - blob.shape.center[i]) * blob.wave_directions[w][i];
    d = d + blob.roughness_mm * at::sin(projection * 0.25 + blob.wave_phases[w]);
  }
  return d;
}

Vec3 cross(const Vec3& a, const Vec3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

Vec3 normalised(const Vec3& v) {
  const double n = std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]) + 1e-9;
  return {v[0] / n, v[1] / n, v[2] / n};
}

Blob random_blob(Random& rng, const Vec3& center, double radius_mm, double roughness_mm) {
  Blob blob;
  blob.shape.center = center;
  for (auto& a : blob.shape.semi_axes)
    a = radius_mm * rng.uniform(0.8, 1.2);
  for (auto& direction : blob.wave_directions) {
    const Vec3 v{rng.normal(), rng.normal(), rng.normal()};
    direction = normalised(v);
  }
  for (auto& phase : blob.wave_phases)
    phase = rng.uniform(0, 2 * M_PI);
  blob.roughness_mm = roughness_mm;
  return blob;
}

Head random_head(Random& rng) {
  Head head;
  head.center = {rng.normal(0, 4), rng.normal(0, 6), rng.normal(0, 5)};
  head.rotation = rotation(rng.normal(0, 0.08), rng.normal(0, 0.08), rng.normal(0, 0.04));
  const double scale = rng.uniform(0.92, 1.08);
  const Vec3 outer{72 * scale * rng.uniform(0.96, 1.04), 92 * scale * rng.uniform(0.96, 1.04),
                   76 * scale * rng.uniform(0.96, 1.04)};
  auto shrink = [&](double mm) {
    return Ellipsoid{{0, 0, 0}, {outer[0] - mm, outer[1] - mm, outer[2] - mm}};
  };
  head.scalp = shrink(0);
  head.skull = shrink(rng.uniform(4, 6));
  head.csf_space = shrink(rng.uniform(10, 12));
  head.brain = shrink(rng.uniform(12.5, 15));
  head.white = shrink(rng.uniform(17, 19.5));
  const double ventricle_scale = rng.uniform(0.7, 1.6);  // atrophy varies with age
  for (int side = 0; side < 2; ++side) {
    head.ventricles[side].center = {(side == 0 ? -1 : 1) * 8.0 * std::sqrt(ventricle_scale), 2, 10};
    head.ventricles[side].semi_axes = {4.5 * ventricle_scale, 20 * std::sqrt(ventricle_scale),
                                       8 * ventricle_scale};
  }
  head.gyral_amplitude_mm = rng.uniform(0.8, 1.6);
  return head;
}

at::Tensor tissue_fractions(const Head& head, const at::Tensor& p, int64_t components,
                            const at::Tensor& brain_points) {
  const bool displaced = brain_points.defined();
  const at::Tensor& q = displaced ? brain_points : p;
  const at::Tensor in_scalp = inside(signed_distance(p, head.scalp));
  const at::Tensor in_skull = inside(signed_distance(p, head.skull));
  const at::Tensor in_csf = inside(signed_distance(p, head.csf_space));
  // Gyri: the grey matter surface and the grey/white boundary fold with the same low-frequency pattern.
  const at::Tensor folds = head.gyral_amplitude_mm * at::sin(axis(q, 0) * 0.35) * at::sin(axis(q, 1) * 0.3) *
                           at::sin(axis(q, 2) * 0.32);
  at::Tensor in_brain = inside(signed_distance(q, head.brain) + folds);
  at::Tensor in_white = inside(signed_distance(q, head.white) + 1.5 * folds);
  if (displaced) {
    in_brain = at::minimum(in_brain, in_csf);
    in_white = at::minimum(in_white, in_brain);
  }
  const at::Tensor in_ventricle = at::maximum(inside(signed_distance(q, head.ventricles[0])),
                                              inside(signed_distance(q, head.ventricles[1])));
  at::Tensor fractions = at::zeros({components, p.size(0)}, p.options());
  fractions[kScalp] = in_scalp - in_skull;
  fractions[kBone] = in_skull - in_csf;
  fractions[kCsf] = (in_csf - in_brain) + in_brain * in_ventricle;
  fractions[kWhite] = in_white * (1 - in_ventricle);
  fractions[kGrey] = (in_brain - in_white) * (1 - in_ventricle);
  return fractions;
}

const std::vector<std::string> kLobes{"frontal", "parietal", "temporal", "occipital"};

bool in_lobe(const std::string& lobe, const Vec3& p) {
  const double y = p[1], z = p[2];
  if (lobe == "frontal") return y > 12 && z > -10;
  if (lobe == "parietal") return y <= 12 && y > -45 && z > 18;
  if (lobe == "temporal") return y <= 12 && y > -45 && z <= 18 && z > -25 && std::abs(p[0]) > 30;
  return y <= -45 && z > -15;  // occipital
}

bool in_ellipsoid(const Ellipsoid& e, const Vec3& p, double margin) {
  double r2 = 0;
  for (int i = 0; i < 3; ++i)
    r2 += std::pow((p[i] - e.center[i]) / (e.semi_axes[i] - margin), 2);
  return r2 < 1;
}

Vec3 sample_point(Random& rng, const Head& head, const std::string& lobe, const std::string& side,
                  double margin_mm) {
  const double sign = side == "left" ? -1.0 : 1.0;  // RAS: +x is the subject's right
  for (int attempt = 0; attempt < 10000; ++attempt) {
    const Vec3 p{sign * rng.uniform(5, head.white.semi_axes[0]), rng.uniform(-1, 1) * head.white.semi_axes[1],
                 rng.uniform(-1, 1) * head.white.semi_axes[2]};
    if (!in_lobe(lobe, p) || !in_ellipsoid(head.white, p, margin_mm)) continue;
    bool near_ventricle = false;
    for (const auto& v : head.ventricles)
      near_ventricle |=
          in_ellipsoid({v.center, {v.semi_axes[0] + 6, v.semi_axes[1] + 6, v.semi_axes[2] + 6}}, p);
    if (!near_ventricle) return p;
  }
  throw Error(fmt::format("synth: could not place a lesion in the {} {} lobe", side, lobe));
}

Acquisition tilted_acquisition(Random& rng, const Head& head, const Mat3& tilt, const Vec3& i, const Vec3& j,
                               const Vec3& k, int64_t in_plane, int64_t slices, double in_plane_mm,
                               double slice_mm) {
  auto turn = [&](const Vec3& v) {
    Vec3 out{};
    for (int r = 0; r < 3; ++r)
      out[r] = tilt[r][0] * v[0] + tilt[r][1] * v[1] + tilt[r][2] * v[2];
    return out;
  };
  const Vec3 di = turn(i), dj = turn(j), dk = turn(k);
  Acquisition acquisition;
  acquisition.dims = {in_plane, in_plane, slices};
  const double spacing[3] = {in_plane_mm, in_plane_mm, slice_mm};
  const Vec3 centre{head.center[0] + rng.normal(0, 3), head.center[1] + rng.normal(0, 3),
                    head.center[2] + rng.normal(0, 3)};
  for (int r = 0; r < 3; ++r) {
    acquisition.affine[r] = {di[r] * spacing[0], dj[r] * spacing[1], dk[r] * spacing[2], 0};
    double offset = centre[r];
    for (int c = 0; c < 3; ++c)
      offset -= acquisition.affine[r][c] * (static_cast<double>(acquisition.dims[c]) - 1) / 2;
    acquisition.affine[r][3] = offset;
  }
  acquisition.affine[3] = {0, 0, 0, 1};
  return acquisition;
}

at::Tensor head_points(const Acquisition& acquisition, const Head& head, int64_t first_slice,
                       int64_t slices) {
  const auto opts = at::dtype(at::kFloat);
  const auto grid =
      at::meshgrid({slices > 0 ? at::arange(first_slice, first_slice + slices, opts)
                               : at::arange(acquisition.dims[2], opts),
                    at::arange(acquisition.dims[1], opts), at::arange(acquisition.dims[0], opts)},
                   "ij");
  const at::Tensor ijk =
      at::stack({grid[2].reshape(-1), grid[1].reshape(-1), grid[0].reshape(-1)}, 1);  // [N, 3]
  at::Tensor a = at::empty({3, 3}, at::dtype(at::kDouble));
  at::Tensor t = at::empty({3}, at::dtype(at::kDouble));
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 3; ++c)
      a[r][c] = acquisition.affine[r][c];
    t[r] = acquisition.affine[r][3] - head.center[r];
  }
  at::Tensor rot = at::empty({3, 3}, at::dtype(at::kDouble));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c)
      rot[r][c] = head.rotation[r][c];
  // head = Rᵀ (A·ijk + t − centre); points as rows: ijk·Aᵀ·R + (t − centre)ᵀ·R.
  const at::Tensor world_minus_centre = at::matmul(ijk, a.t().to(at::kFloat)) + t.to(at::kFloat);
  return at::matmul(world_minus_centre, rot.to(at::kFloat));
}

}  // namespace hlip::data::anatomy
