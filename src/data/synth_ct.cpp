// The procedural head CT of `hlip synth`: the MRI generator's anatomy in Hounsfield units, with
// intracranial haemorrhage, mass effect and an axial acquisition with a gantry tilt.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cmath>

#include "hlip/core/error.h"
#include "hlip/core/random.h"
#include "hlip/data/synth.h"
#include "synth_anatomy.h"
#include "synth_reports.h"

namespace hlip::data {
namespace {

using namespace anatomy;

// Tissue (anatomy::Tissue) and lesion components, in the order of `Densities::hu`.
enum Component { kBlood = kTissues, kEdema, kComponents };

constexpr double kAirHu = -1000;
// int16 voxels keep what a 12-bit CT stores: −1024 .. 3071 HU.
constexpr double kLowestHu = -1024, kHighestHu = 3071;

// Mean attenuation of each component in one study; acquisition and patient make them vary a little.
struct Densities {
  std::array<double, kComponents> hu{};
};

Densities random_densities(Random& rng) {
  Densities d;
  d.hu[kScalp] = rng.uniform(35, 50);
  d.hu[kBone] = rng.uniform(800, 1400);
  d.hu[kCsf] = rng.uniform(2, 12);
  d.hu[kGrey] = rng.uniform(35, 42);
  d.hu[kWhite] = rng.uniform(24, 30);
  d.hu[kBlood] = rng.uniform(62, 85);  // acute clotted blood
  d.hu[kEdema] = rng.uniform(14, 22);
  return d;
}

// One haemorrhage: its ground truth and the geometry it is drawn from (head coordinates).
struct Haemorrhage {
  SynthFinding finding;
  Blob clot;                // intraparenchymal; a flat blob for blood in the basal cisterns
  double edema_mm = 0;      // intraparenchymal: the low-density rim around the clot
  Vec3 direction{0, 0, 1};  // extra-axial and convexity subarachnoid: unit vector to the collection's centre
  double half_angle = 0;    // ... and its angular half-extent (radians)
  double depth_mm = 0;      // convexity subarachnoid: how deep blood fills the sulci below the brain surface
  bool lentiform = false;   // epidural: biconvex (thickest at the centre) instead of crescentic
  // Epidural with a fracture: the normal of the fracture plane (through the head centre and the
  // collection's), and the width of the gap.
  Vec3 fracture_normal{0, 0, 0};
  double fracture_mm = 0;
  int ventricle = 0;    // intraventricular: 0 left, 1 right
  double level_mm = 0;  // intraventricular: the fluid level, as a head y coordinate
};

// Size factor of haemorrhages in `--size small` studies (clot radius, collection thickness, subarachnoid
// depth and extent, ventricular blood): each is drawn as at clinical size, then grown so that it spans whole
// patches of the coarse grid (~4.7 mm voxels, 16-voxel patches in the demo's tiny model), as the MRI tumours
// are.
constexpr double kSmallHaemorrhageScale = 1.5;

double rounded(double value, double step) {
  return std::round(value / step) * step;
}

// The mean radius of the inner table, to turn an angular extent into millimetres along it.
double inner_radius(const Head& head) {
  const auto& a = head.csf_space.semi_axes;
  return (a[0] + a[1] + a[2]) / 3.0;
}

// Places a haemorrhage of `type` in `head` (intraventricular blood may enlarge its ventricles).
Haemorrhage random_haemorrhage(Random& rng, Head& head, const std::string& type, SynthSize size) {
  Haemorrhage h;
  SynthFinding& f = h.finding;
  f.type = type;
  f.side = rng.bernoulli(0.5) ? "left" : "right";
  const bool small = size == SynthSize::kSmall;
  const double grow = small ? kSmallHaemorrhageScale : 1.0;
  if (type == "intraparenchymal") {
    f.lobe = rng.pick(kLobes);
    f.location = "parenchyma";
    const double radius = grow * rng.uniform(5, 22);
    h.clot =
        random_blob(rng, sample_point(rng, head, f.lobe, f.side, std::min(0.5 * radius, 10.0)), radius, 1.0);
    h.edema_mm = grow * rng.uniform(2, 5);
    f.edema = true;
    f.size_mm = rounded(2 * radius, 0.1);
    if (f.size_mm >= 32) f.midline_shift_mm = rounded(0.25 * (f.size_mm - 24), 0.1);
  } else if (type == "subdural" || type == "epidural") {
    f.lobe = rng.pick(kLobes);
    f.location = "convexity";
    h.direction = normalised(sample_point(rng, head, f.lobe, f.side, 0));
    h.lentiform = type == "epidural";
    if (h.lentiform) {
      f.thickness_mm = rounded(grow * rng.uniform(small ? 8 : 6, 25), 0.1);
      h.half_angle = std::min(0.8, std::sqrt(grow) * rng.uniform(0.3, 0.5));
      if (f.thickness_mm >= 12) f.midline_shift_mm = rounded(0.5 * (f.thickness_mm - 8), 0.1);
      // Most epidural haematomas lie under a skull fracture (a torn meningeal artery): a linear gap through
      // the bone over the collection's centre, in a random direction across it.
      f.fracture = rng.bernoulli(0.8);
      if (f.fracture) {
        const Vec3 any = std::abs(h.direction[2]) < 0.9 ? Vec3{0, 0, 1} : Vec3{1, 0, 0};
        Vec3 u = cross(h.direction, any), v = cross(h.direction, u);
        const double theta = rng.uniform(0, M_PI);
        for (int i = 0; i < 3; ++i)
          h.fracture_normal[i] = std::cos(theta) * u[i] + std::sin(theta) * v[i];
        h.fracture_normal = normalised(h.fracture_normal);
        h.fracture_mm = grow * rng.uniform(2, 4);
      }
    } else {
      f.thickness_mm = rounded(grow * rng.uniform(small ? 5 : 3, 18), 0.1);
      h.half_angle = rng.uniform(0.7, 1.1);  // a crescent over several lobes: sutures do not stop it
      if (f.thickness_mm >= 10) f.midline_shift_mm = rounded(0.6 * (f.thickness_mm - 7), 0.1);
    }
    f.size_mm = rounded(2 * h.half_angle * inner_radius(head), 0.1);
  } else if (type == "subarachnoid") {
    if (rng.bernoulli(0.6)) {
      f.lobe = rng.pick(kLobes);
      f.location = "convexity";
      h.direction = normalised(sample_point(rng, head, f.lobe, f.side, 0));
      h.half_angle = std::sqrt(grow) * rng.uniform(0.35, 0.6);
      h.depth_mm = grow * rng.uniform(3, 5);
      f.size_mm = rounded(2 * h.half_angle * inner_radius(head), 0.1);
    } else {
      f.side.clear();
      f.location = "basal cisterns";
      // Blood around the base of the brain, reaching laterally into both Sylvian fissures.
      h.clot.shape.center = {rng.normal(0, 1.5), rng.uniform(0, 8), rng.uniform(-24, -18)};
      h.clot.shape.semi_axes = {rng.uniform(18, 26), std::sqrt(grow) * rng.uniform(9, 13),
                                std::sqrt(grow) * rng.uniform(5.5, 7)};
      f.size_mm = rounded(2 * h.clot.shape.semi_axes[0], 0.1);
    }
  } else if (type == "intraventricular") {
    f.location = "lateral ventricle";
    h.ventricle = f.side == "left" ? 0 : 1;
    // Ventricular blood often comes with hydrocephalus; the enlarged ventricles also keep the layer visible
    // on thick slices.
    const double scale = head.ventricles[0].semi_axes[0] / 4.5;
    if (scale < 1.3) {
      const double enlarged = std::sqrt(grow) * rng.uniform(1.3, 1.6);
      for (int side = 0; side < 2; ++side) {
        head.ventricles[side].center = {(side == 0 ? -1 : 1) * 8.0 * std::sqrt(enlarged), 2, 10};
        head.ventricles[side].semi_axes = {4.5 * enlarged, 20 * std::sqrt(enlarged), 8 * enlarged};
      }
    }
    // Supine: blood settles in the posterior (dependent) part of the ventricle, below a fluid level.
    const Ellipsoid& v = head.ventricles[h.ventricle];
    const double depth = std::min(0.7, std::sqrt(grow) * rng.uniform(0.3, 0.5)) * 2 * v.semi_axes[1];
    h.level_mm = v.center[1] - v.semi_axes[1] + depth;
    f.size_mm = rounded(depth, 0.1);
  } else {
    throw Error(fmt::format("synth: unknown haemorrhage type \"{}\"", type));
  }
  return h;
}

// One or two haemorrhage types, of which at most one is a mass (intraparenchymal, subdural, epidural).
std::vector<std::string> choose_types(Random& rng) {
  const double pick = rng.uniform();
  const std::string first = pick < 0.2   ? "intraparenchymal"
                            : pick < 0.4 ? "subdural"
                            : pick < 0.6 ? "epidural"
                            : pick < 0.8 ? "subarachnoid"
                                         : "intraventricular";
  std::vector<std::string> types{first};
  if (rng.bernoulli(0.3)) {
    std::vector<std::string> second;
    for (const auto& type : ct_haemorrhage_types()) {
      const bool mass = type == "intraparenchymal" || type == "subdural" || type == "epidural";
      const bool first_is_mass = first == "intraparenchymal" || first == "subdural" || first == "epidural";
      if (type != first && !(mass && first_is_mass)) second.push_back(type);
    }
    types.push_back(rng.pick(second));
  }
  return types;
}

// Writes the haemorrhage into `fractions` [components, N] and returns its share of every point [N].
// `brain_points` are where the (displaced) brain's structures are looked up, as for tissue_fractions.
at::Tensor apply_haemorrhage(const Haemorrhage& h, const Head& head, const at::Tensor& p,
                             const at::Tensor& brain_points, at::Tensor& fractions) {
  auto take = [&](Component component, const at::Tensor& share) {
    // `share` of each point becomes `component`, taken proportionally from what was there.
    const at::Tensor s = at::clamp(share, 0, 1);
    fractions.mul_(1 - s);
    fractions[component] += s;
    return s;
  };
  const auto& f = h.finding;
  const at::Tensor in_brain = fractions[kGrey] + fractions[kWhite];
  if (f.type == "intraparenchymal") {
    const at::Tensor clot = inside(blob_distance(p, h.clot)) * (in_brain + fractions[kBlood]);
    const at::Tensor rim = inside(blob_distance(p, h.clot, h.edema_mm), 1.5) * in_brain;
    take(kEdema, rim - clot * rim);
    return take(kBlood, clot);
  }
  // Each point's coordinate along a unit `direction` from the head centre.
  auto along = [&](const Vec3& direction) {
    at::Tensor dot = at::zeros({p.size(0)}, p.options());
    for (int i = 0; i < 3; ++i)
      dot = dot + axis(p, i) * direction[i];
    return dot;
  };
  // Angle of each point's direction from the head centre to the collection's centre.
  auto angle_from = [&](const Vec3& direction) {
    const at::Tensor dot = along(direction);
    const at::Tensor radius =
        at::sqrt(at::square(axis(p, 0)) + at::square(axis(p, 1)) + at::square(axis(p, 2)));
    return at::acos(at::clamp(dot / (radius + 1e-6), -1, 1));
  };
  const at::Tensor below_table = -signed_distance(p, head.csf_space);  // mm inside the inner table
  if (f.type == "subdural" || f.type == "epidural") {
    // Thickness profile along the inner table: a lens (epidural) is thickest at its centre and tapers
    // steadily; a crescent (subdural) keeps its thickness and tapers only at its ends.
    const at::Tensor t = at::square(angle_from(h.direction) / h.half_angle);
    const at::Tensor profile = at::clamp(1 - (h.lentiform ? t : at::square(t)), 0, 1) * f.thickness_mm;
    const at::Tensor collection = at::sigmoid(below_table / 0.8) * at::sigmoid((profile - below_table) / 0.8);
    if (h.fracture_mm > 0) {
      // The fracture: bone in a thin slab through the centre, over the collection, becomes soft tissue.
      const at::Tensor gap = inside(at::abs(along(h.fracture_normal)) - 0.5 * h.fracture_mm) *
                             at::sigmoid((1.2 * h.half_angle - angle_from(h.direction)) / 0.05);
      const at::Tensor bone = fractions[kBone] * gap;
      fractions[kBone] -= bone;
      fractions[kScalp] += bone;
    }
    return take(kBlood, collection * at::gt(profile, 0.0).to(p.scalar_type()));
  }
  if (f.type == "subarachnoid") {
    if (f.location == "basal cisterns") return take(kBlood, inside(signed_distance(p, h.clot.shape)));
    // The subarachnoid space over the region and the sulci down to `depth_mm` below the brain surface.
    const at::Tensor& q = brain_points;
    const at::Tensor folds = head.gyral_amplitude_mm * at::sin(axis(q, 0) * 0.35) *
                             at::sin(axis(q, 1) * 0.3) * at::sin(axis(q, 2) * 0.32);
    const at::Tensor surface_layer =
        inside(-below_table) * (1 - inside(signed_distance(q, head.brain) + folds + h.depth_mm));
    const at::Tensor region = at::sigmoid((h.half_angle - angle_from(h.direction)) / 0.05);
    return take(kBlood, surface_layer * region);
  }
  // Intraventricular: the dependent part of one lateral ventricle, below the fluid level.
  const at::Tensor ventricle = inside(signed_distance(brain_points, head.ventricles[h.ventricle]));
  return take(kBlood, ventricle * at::sigmoid((h.level_mm - axis(brain_points, 1)) / 0.8));
}

// An axial series as CT scanners store it (columns towards the patient's left, rows towards posterior,
// slices ascending), tilted with the gantry and slightly oblique.
Acquisition ct_acquisition(Random& rng, const Head& head, SynthSize size) {
  double in_plane_mm = 0, slice_mm = 5;
  int64_t in_plane = 0;
  if (size == SynthSize::kSmall) {
    in_plane = 48;
    in_plane_mm = rng.uniform(4.4, 5.0);
  } else {
    in_plane = 512;
    in_plane_mm = rng.uniform(0.42, 0.49);
    slice_mm = rng.bernoulli(0.7) ? 5.0 : 0.625;
  }
  const auto slices = static_cast<int64_t>(std::round(rng.uniform(150, 170) / slice_mm));
  const Mat3 tilt = rotation(rng.normal(0, 0.02), rng.normal(0, 0.1), rng.normal(0, 0.02));
  return tilted_acquisition(rng, head, tilt, {-1, 0, 0}, {0, -1, 0}, {0, 0, 1}, in_plane, slices, in_plane_mm,
                            slice_mm);
}

}  // namespace

const std::vector<std::string>& ct_haemorrhage_types() {
  static const std::vector<std::string> types{"epidural", "intraparenchymal", "intraventricular",
                                              "subarachnoid", "subdural"};
  return types;
}

const std::vector<std::string>& ct_label_columns() {
  static const std::vector<std::string> columns{
      "Any", "Epidural", "Intraparenchymal", "Intraventricular", "Subarachnoid", "Subdural"};
  return columns;
}

SynthStudy generate_ct_study(uint64_t seed, int64_t index, SynthSize size) {
  if (index < 0) throw Error(fmt::format("synth: study index {} is negative", index));
  const uint64_t ct_seed = seed ^ name_hash("ct");
  Random rng(derive_seed(ct_seed, static_cast<uint64_t>(index)));
  SynthStudy study;
  study.id = fmt::format("ct-{:06d}", index);
  study.modality = "ct";

  Head head = random_head(rng);
  const bool normal = rng.bernoulli(0.4);
  std::vector<Haemorrhage> haemorrhages;
  if (!normal) {
    for (const auto& type : choose_types(rng))
      haemorrhages.push_back(random_haemorrhage(rng, head, type, size));
  }
  study.diagnosis = normal ? "normal" : haemorrhages.front().finding.type;
  for (const auto& h : haemorrhages) {
    study.findings.push_back(h.finding);
    study.midline_shift_mm = std::max(study.midline_shift_mm, h.finding.midline_shift_mm);
  }
  for (const auto& column : ct_label_columns())
    study.labels[column] = 0;
  study.labels["Any"] = normal ? 0 : 1;
  for (const auto& f : study.findings) {
    std::string column = f.type;
    column[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(column[0])));
    study.labels[column] = 1;
  }

  // Mass effect: the brain moves away from the mass (most at the midline, less towards the skull) and the
  // ventricle on the mass's side is compressed.
  double shift_sign = 0;  // +1: brain pushed towards the subject's right (+x)
  for (const auto& h : haemorrhages) {
    if (h.finding.midline_shift_mm > 0) shift_sign = h.finding.side == "left" ? 1.0 : -1.0;
  }
  Head brain_head = head;
  if (study.midline_shift_mm > 0) {
    auto& compressed = brain_head.ventricles[shift_sign > 0 ? 0 : 1].semi_axes[0];
    compressed *= 1 - std::min(0.45, study.midline_shift_mm / 12);
  }

  const Densities densities = random_densities(rng);
  const Acquisition acquisition = ct_acquisition(rng, head, size);
  const double noise_hu = rng.uniform(2.5, 5.0);
  study.dicom =
      Random(derive_seed(ct_seed ^ name_hash("format"), static_cast<uint64_t>(index))).bernoulli(0.3);
  at::Generator noise =
      at::detail::createCPUGenerator(derive_seed(ct_seed ^ name_hash("noise"), static_cast<uint64_t>(index)));

  at::Tensor table = at::empty({kComponents}, at::dtype(at::kFloat));
  for (int c = 0; c < kComponents; ++c)
    table[c] = densities.hu[static_cast<size_t>(c)] - kAirHu;  // air fills what no component does
  const auto& d = acquisition.dims;
  // Slabs of slices bound the memory of full-size series (512×512 by up to 270 slices).
  const int64_t per_slice = d[0] * d[1];
  const int64_t slab = std::max<int64_t>(1, (int64_t{1} << 20) / per_slice);
  std::vector<at::Tensor> voxels, lesion;
  std::vector<std::vector<at::Tensor>> finding_shares(haemorrhages.size());
  for (int64_t first = 0; first < d[2]; first += slab) {
    const int64_t count = std::min(slab, d[2] - first);
    const at::Tensor points = head_points(acquisition, head, first, count);
    at::Tensor brain_points = points;
    if (study.midline_shift_mm > 0) {
      const at::Tensor falloff = at::exp(-at::square(axis(points, 0)) / (2 * 30.0 * 30.0));
      brain_points = points.clone();
      brain_points.select(1, 0).sub_(shift_sign * study.midline_shift_mm * falloff);
    }
    at::Tensor fractions = tissue_fractions(brain_head, points, kComponents, brain_points);
    at::Tensor union_share = at::zeros({points.size(0)}, points.options());
    for (size_t k = 0; k < haemorrhages.size(); ++k) {
      const at::Tensor share =
          apply_haemorrhage(haemorrhages[k], brain_head, points, brain_points, fractions);
      union_share = at::maximum(union_share, share);
      finding_shares[k].push_back(share);
    }
    at::Tensor hu = at::matmul(table.unsqueeze(0), fractions).squeeze(0) + kAirHu;
    hu = hu + at::randn(hu.sizes(), noise, hu.options()) * noise_hu;
    voxels.push_back(at::clamp(at::round(hu), kLowestHu, kHighestHu).to(at::kShort));
    lesion.push_back(union_share);
  }
  // Points are in Fortran order (i fastest); the volume is [I, J, K] with Fortran strides, as readers give.
  auto as_volume = [&](const std::vector<at::Tensor>& parts) {
    return at::cat(parts).view({d[2], d[1], d[0]}).permute({2, 1, 0});
  };
  SynthScan scan;
  scan.name = "CT";
  scan.volume.data = as_volume(voxels);
  scan.volume.dims = d;
  scan.volume.affine = acquisition.affine;
  for (int c = 0; c < 3; ++c) {
    scan.volume.spacing_mm[c] =
        std::sqrt(std::pow(acquisition.affine[0][c], 2) + std::pow(acquisition.affine[1][c], 2) +
                  std::pow(acquisition.affine[2][c], 2));
  }
  scan.volume.stored_dtype = at::kShort;
  scan.volume.description = "hlip synth CT head";
  scan.lesion_fraction = as_volume(lesion);
  for (const auto& shares : finding_shares)
    scan.finding_fractions.push_back(as_volume(shares));
  study.scans.push_back(std::move(scan));

  Random report_rng(derive_seed(ct_seed ^ name_hash("report"), static_cast<uint64_t>(index)));
  study.reports = write_ct_reports(study, report_rng);
  return study;
}

}  // namespace hlip::data
