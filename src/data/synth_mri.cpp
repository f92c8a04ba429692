// The procedural brain MRI of `hlip synth`: anatomy, findings and acquisition, all in world millimetres.
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "hlip/core/error.h"
#include "hlip/core/random.h"
#include "hlip/data/synth.h"
#include "synth_anatomy.h"
#include "synth_reports.h"

namespace hlip::data {
namespace {

using namespace anatomy;

// Tissue (anatomy::Tissue) and lesion components, in the order of the contrast table's columns.
enum Component { kEdema = kTissues, kSolid, kNecrosis, kEnhancing, kMeningioma, kInfarct, kComponents };

// Relative signal of each component per sequence; lesion components replace the tissue under them.
struct Contrast {
  const char* sequence;
  std::array<double, kComponents> signal;
};
const Contrast kContrasts[] = {
    //         scalp bone  csf   grey  white edema solid necro enh   menin infarct
    {"T1", {0.90, 0.05, 0.15, 0.55, 0.80, 0.45, 0.42, 0.20, 0.50, 0.55, 0.45}},
    {"T2", {0.60, 0.05, 1.00, 0.60, 0.45, 0.85, 0.80, 0.92, 0.70, 0.60, 0.75}},
    {"FLAIR", {0.70, 0.05, 0.05, 0.60, 0.50, 0.88, 0.82, 0.70, 0.75, 0.62, 0.86}},
    {"T1c", {0.90, 0.05, 0.15, 0.57, 0.82, 0.45, 0.48, 0.20, 1.30, 1.25, 0.45}},
    {"DWI", {0.20, 0.02, 0.08, 0.55, 0.50, 0.55, 0.68, 0.30, 0.70, 0.60, 1.45}},
};

const Contrast& contrast_of(const std::string& sequence) {
  for (const auto& contrast : kContrasts) {
    if (sequence == contrast.sequence) return contrast;
  }
  throw Error(fmt::format("synth: unknown sequence \"{}\"", sequence));
}

// Radius factor of tumours (glioma, meningioma, metastases and their oedema) in `--size small` studies.
constexpr double kSmallTumourScale = 2.0;
// Half-angle factor of stroke wedges in `--size small` studies.
constexpr double kSmallStrokeWidening = 1.5;

// Lesion fractions of one finding, written into `fractions` (which holds the normal tissues).
struct LesionModel {
  SynthFinding finding;
  std::vector<Blob> cores;       // solid parts (glioma, metastases)
  std::vector<double> edema_mm;  // edema extends this far around each core
  std::vector<double> rim_mm;    // enhancing rim thickness (0: solid enhancement or none)
  Blob meningioma;
  Vec3 stroke_origin{0, 0, 0};
  Vec3 stroke_direction{0, 0, 0};
  double stroke_cos_half_angle = 1;
  double stroke_reach_mm = 0;
};

LesionModel random_lesion(Random& rng, const Head& head, const std::string& diagnosis, SynthSize size) {
  LesionModel model;
  SynthFinding& f = model.finding;
  f.type = diagnosis;
  f.side = rng.bernoulli(0.5) ? "left" : "right";
  const double sign = f.side == "left" ? -1.0 : 1.0;
  const double min_scale = size == SynthSize::kSmall ? 1.4 : 1.0;  // small volumes have ~4 mm voxels
  // Small studies are seen on a coarse grid (about 3 mm voxels and 16-voxel patches in the demo's tiny
  // model): tumours grow by this factor there so that they span whole patches, as real ones do at clinical
  // resolution.
  const double grow = size == SynthSize::kSmall ? kSmallTumourScale : 1.0;
  if (diagnosis == "glioma") {
    f.lobe = rng.pick(kLobes);
    const double radius = rng.uniform(8, 20);  // placed as the clinical-size tumour, then grown
    model.cores.push_back(
        random_blob(rng, sample_point(rng, head, f.lobe, f.side, radius * 0.5), grow * radius, 1.5));
    f.enhancing = rng.bernoulli(0.55);  // high grade: necrotic centre and enhancing rim
    f.edema = true;
    model.edema_mm.push_back(grow * rng.uniform(5, 14));
    model.rim_mm.push_back(f.enhancing ? grow * rng.uniform(2.5, 4.5) : -1);
    f.size_mm = 2 * grow * radius;
  } else if (diagnosis == "metastasis") {
    f.count = rng.bernoulli(0.45) ? 1 : static_cast<int>(rng.integer(2, 4));
    f.lobe = rng.pick(kLobes);
    f.enhancing = true;
    f.edema = true;
    for (int i = 0; i < f.count; ++i) {
      const std::string lobe = i == 0 ? f.lobe : rng.pick(kLobes);
      const std::string side = i == 0 ? f.side : (rng.bernoulli(0.5) ? "left" : "right");
      const double base = rng.uniform(3.0 * min_scale, 8.0);
      const double radius = grow * base;
      model.cores.push_back(random_blob(rng, sample_point(rng, head, lobe, side, 2), radius, 0.4));
      model.edema_mm.push_back(radius * rng.uniform(0.8, 1.6));
      model.rim_mm.push_back(base > 7 ? grow * 2.5
                                      : 0.0);  // larger ones outgrow their supply: necrotic centre
      f.size_mm = std::max(f.size_mm, 2 * radius);
    }
  } else if (diagnosis == "meningioma") {
    f.lobe = rng.pick(kLobes);
    // A point on the inner table of the skull above the lobe, reached along the direction of a lobe point.
    const Vec3 anchor = sample_point(rng, head, f.lobe, f.side, 0);
    const double n = std::sqrt(std::pow(anchor[0] / head.csf_space.semi_axes[0], 2) +
                               std::pow(anchor[1] / head.csf_space.semi_axes[1], 2) +
                               std::pow(anchor[2] / head.csf_space.semi_axes[2], 2));
    const double radius = grow * rng.uniform(8 * min_scale * 0.8, 18);
    const Vec3 surface{anchor[0] / n, anchor[1] / n, anchor[2] / n};
    const double depth = 0.55 * radius;
    const double len = std::sqrt(surface[0] * surface[0] + surface[1] * surface[1] + surface[2] * surface[2]);
    const Vec3 center{surface[0] * (1 - depth / len), surface[1] * (1 - depth / len),
                      surface[2] * (1 - depth / len)};
    model.meningioma = random_blob(rng, center, radius, 0.3);
    f.enhancing = true;
    f.size_mm = 2 * radius;
  } else if (diagnosis == "stroke") {
    const double pick = rng.uniform();
    f.territory = pick < 0.6 ? "MCA" : pick < 0.8 ? "ACA" : "PCA";
    model.stroke_origin = {sign * 12.0, 0, 8};
    double azimuth = 0, elevation = 0;  // of the wedge's axis, in radians, for the right side
    if (f.territory == "MCA") {
      azimuth = rng.uniform(-0.35, 0.35);
      elevation = rng.uniform(-0.1, 0.45);
      f.lobe = azimuth > 0.1 ? "frontal" : elevation > 0.3 ? "parietal" : "temporal";
    } else if (f.territory == "ACA") {
      azimuth = rng.uniform(1.25, 1.45);
      elevation = rng.uniform(0.35, 0.7);
      f.lobe = "frontal";
    } else {
      azimuth = rng.uniform(-1.6, -1.35);
      elevation = rng.uniform(-0.1, 0.25);
      f.lobe = "occipital";
    }
    // Azimuth 0 points laterally (towards the stroke side), +π/2 anteriorly.
    model.stroke_direction = {sign * std::cos(elevation) * std::cos(azimuth),
                              std::cos(elevation) * std::sin(azimuth), std::sin(elevation)};
    // Branch to near-complete territory infarcts; wider on the coarse grid of small studies, where a narrow
    // wedge covers a few noisy voxels that the percentile clip of preprocessing levels with the brain.
    const double half_angle =
        rng.uniform(0.22, 0.42) * (size == SynthSize::kSmall ? kSmallStrokeWidening : 1.0);
    model.stroke_cos_half_angle = std::cos(half_angle);
    model.stroke_reach_mm = rng.uniform(45, 85);
    f.size_mm = model.stroke_reach_mm * 0.5;  // the wedge's extent inside the hemisphere, roughly
  }
  return model;
}

// Adds the finding to `fractions` [components, N] and returns its share of every point [N].
at::Tensor apply_lesion(const LesionModel& model, const Head& head, const at::Tensor& p,
                        at::Tensor& fractions) {
  const at::Tensor in_brain = fractions[kGrey] + fractions[kWhite];
  at::Tensor lesion = at::zeros({p.size(0)}, p.options());
  auto take = [&](Component component, const at::Tensor& share) {
    // `share` of each point becomes `component`, taken proportionally from what was there.
    const at::Tensor s = at::clamp(share, 0, 1);
    fractions.mul_(1 - s);
    fractions[component] += s;
  };
  const auto& f = model.finding;
  if (f.type == "glioma" || f.type == "metastasis") {
    for (size_t i = 0; i < model.cores.size(); ++i) {
      const at::Tensor d = blob_distance(p, model.cores[i]);
      const at::Tensor edema = inside(blob_distance(p, model.cores[i], model.edema_mm[i]), 2.5) * in_brain;
      const at::Tensor core = inside(d);
      take(kEdema, edema - core * edema);
      if (model.rim_mm[i] > 0) {  // necrotic centre inside an enhancing rim
        take(kEnhancing, core);
        take(kNecrosis, inside(d + model.rim_mm[i]));
      } else if (model.rim_mm[i] == 0) {
        take(kEnhancing, core);
      } else {
        take(kSolid, core);
      }
      lesion = at::maximum(lesion, core);  // the tumour itself; the oedema around it is tissue reacting
    }
  } else if (f.type == "meningioma") {
    const at::Tensor within_skull = inside(signed_distance(p, head.csf_space));
    const at::Tensor mass = inside(blob_distance(p, model.meningioma)) * within_skull;
    take(kMeningioma, mass);
    lesion = mass;
  } else if (f.type == "stroke") {
    at::Tensor dot = at::zeros({p.size(0)}, p.options());
    at::Tensor r2 = at::zeros({p.size(0)}, p.options());
    for (int i = 0; i < 3; ++i) {
      const at::Tensor d = axis(p, i) - model.stroke_origin[i];
      dot = dot + d * model.stroke_direction[i];
      r2 = r2 + d * d;
    }
    const at::Tensor r = at::sqrt(r2) + 1e-6;
    const at::Tensor cone = at::sigmoid(((dot / r) - model.stroke_cos_half_angle) * 60.0);
    const at::Tensor reach = at::sigmoid((model.stroke_reach_mm - r) / 3.0) * at::sigmoid((r - 15.0) / 3.0);
    const at::Tensor infarct = cone * reach * in_brain;
    take(kInfarct, infarct);
    lesion = infarct;
  }
  return lesion;
}

Acquisition random_acquisition(Random& rng, const Head& head, const std::string& sequence, SynthSize size) {
  // Voxel axes (i, j, k) as world directions; k is the slice axis.
  struct Plane {
    const char* name;
    Vec3 i, j, k;
  };
  static const Plane kPlanes[] = {
      {"axial RAS", {1, 0, 0}, {0, 1, 0}, {0, 0, 1}},   {"axial LAS", {-1, 0, 0}, {0, 1, 0}, {0, 0, 1}},
      {"axial LPS", {-1, 0, 0}, {0, -1, 0}, {0, 0, 1}}, {"sagittal", {0, 1, 0}, {0, 0, -1}, {1, 0, 0}},
      {"coronal", {1, 0, 0}, {0, 0, -1}, {0, 1, 0}},
  };
  const bool volumetric_t1 =
      size == SynthSize::kFull && (sequence == "T1" || sequence == "T1c") && rng.bernoulli(0.5);
  const double p = rng.uniform();
  const Plane& plane = volumetric_t1 ? kPlanes[3]
                       : p < 0.3     ? kPlanes[0]
                       : p < 0.55    ? kPlanes[1]
                       : p < 0.8     ? kPlanes[2]
                       : p < 0.9     ? kPlanes[3]
                                     : kPlanes[4];

  double in_plane_mm = 0, slice_mm = 0;
  int64_t in_plane = 0, slices = 0;
  if (size == SynthSize::kSmall) {
    in_plane = 48;
    in_plane_mm = rng.uniform(4.4, 5.0);
    slice_mm = rng.uniform(5.5, 8.0);
    slices = static_cast<int64_t>(std::round(rng.uniform(140, 170) / slice_mm));
  } else if (volumetric_t1) {
    in_plane = 256;
    in_plane_mm = 1.0;
    slice_mm = 1.0;
    slices = 160;
  } else {
    in_plane = 256;
    in_plane_mm = rng.uniform(0.85, 0.95);
    slice_mm = rng.uniform(4.0, 6.0);
    slices = static_cast<int64_t>(std::round(rng.uniform(140, 170) / slice_mm));
  }
  // Slightly oblique slices, as a technologist would plan them along the head.
  const Mat3 tilt = rotation(rng.normal(0, 0.03), rng.normal(0, 0.05), rng.normal(0, 0.03));
  return tilted_acquisition(rng, head, tilt, plane.i, plane.j, plane.k, in_plane, slices, in_plane_mm,
                            slice_mm);
}

io::Volume render(const std::string& sequence, const at::Tensor& fractions, const Acquisition& acquisition,
                  const at::Tensor& points, Random& rng, at::Generator& noise) {
  const auto& contrast = contrast_of(sequence);
  at::Tensor signal_table = at::empty({kComponents}, at::dtype(at::kFloat));
  for (int c = 0; c < kComponents; ++c)
    signal_table[c] = contrast.signal[static_cast<size_t>(c)];
  at::Tensor image = at::matmul(signal_table.unsqueeze(0), fractions).squeeze(0);
  // Smooth multiplicative bias field (coil sensitivity), then Rician noise, then an arbitrary scanner gain.
  at::Tensor log_bias = at::zeros_like(image);
  for (int i = 0; i < 3; ++i)
    log_bias = log_bias + rng.normal(0, 0.0025) * points.select(1, i);
  log_bias = log_bias + rng.normal(0, 0.00002) * at::square(points.select(1, 0));
  image = image * at::exp(log_bias);
  const double sigma = rng.uniform(0.015, 0.04);
  const at::Tensor n1 = at::randn(image.sizes(), noise, image.options()) * sigma;
  const at::Tensor n2 = at::randn(image.sizes(), noise, image.options()) * sigma;
  image = at::sqrt(at::square(image + n1) + at::square(n2));
  const double gain = rng.uniform(700, 1300);
  const at::Tensor voxels = at::clamp(at::round(image * gain), 0, 32767).to(at::kShort);
  const auto& d = acquisition.dims;
  // points are in Fortran order (i fastest); the volume is [I, J, K] with Fortran strides, as the readers
  // give.
  io::Volume volume;
  volume.data = voxels.view({d[2], d[1], d[0]}).permute({2, 1, 0});
  volume.dims = d;
  volume.affine = acquisition.affine;
  for (int c = 0; c < 3; ++c) {
    volume.spacing_mm[c] =
        std::sqrt(std::pow(acquisition.affine[0][c], 2) + std::pow(acquisition.affine[1][c], 2) +
                  std::pow(acquisition.affine[2][c], 2));
  }
  volume.stored_dtype = at::kShort;
  volume.description = "hlip synth " + sequence;
  return volume;
}

std::vector<std::string> choose_sequences(Random& rng, const std::string& diagnosis) {
  // FLAIR is always acquired (as in most brain protocols); the rest vary, 2-6 scans in all.
  std::vector<std::string> others{"T1", "T2", "T1c", "DWI"};
  rng.shuffle(others);
  const auto extra = static_cast<size_t>(rng.integer(1, 4));
  std::vector<std::string> sequences{"FLAIR"};
  sequences.insert(sequences.end(), others.begin(), others.begin() + static_cast<std::ptrdiff_t>(extra));
  // The sequence that shows a finding best is part of the protocol that looks for it.
  auto require = [&](const std::string& name) {
    if (std::find(sequences.begin(), sequences.end(), name) == sequences.end()) sequences.push_back(name);
  };
  if (diagnosis == "stroke") require("DWI");
  if (diagnosis == "meningioma" || diagnosis == "metastasis") require("T1c");
  std::sort(sequences.begin(), sequences.end(), [](const std::string& a, const std::string& b) {
    const std::vector<std::string> order{"T1", "T2", "FLAIR", "T1c", "DWI"};
    return std::find(order.begin(), order.end(), a) < std::find(order.begin(), order.end(), b);
  });
  return sequences;
}

}  // namespace

const std::vector<std::string>& mri_classes() {
  static const std::vector<std::string> classes{"normal", "stroke", "glioma", "meningioma", "metastasis"};
  return classes;
}

SynthStudy generate_mri_study(uint64_t seed, int64_t index, SynthSize size) {
  if (index < 0) throw Error(fmt::format("synth: study index {} is negative", index));
  Random rng(derive_seed(seed, static_cast<uint64_t>(index)));
  SynthStudy study;
  study.id = fmt::format("mri-{:06d}", index);

  const double pick = rng.uniform();
  const double shares[] = {0.30, 0.18, 0.18, 0.17, 0.17};  // normal, stroke, glioma, meningioma, metastasis
  double cumulative = 0;
  study.diagnosis = mri_classes().back();
  for (size_t c = 0; c < mri_classes().size(); ++c) {
    cumulative += shares[c];
    if (pick < cumulative) {
      study.diagnosis = mri_classes()[c];
      break;
    }
  }
  for (const auto& name : mri_classes())
    study.labels[name] = name == study.diagnosis ? 1 : 0;

  const Head head = random_head(rng);
  LesionModel lesion;
  const bool abnormal = study.diagnosis != "normal";
  if (abnormal) {
    lesion = random_lesion(rng, head, study.diagnosis, size);
    study.findings.push_back(lesion.finding);
  }
  // Noise and the report wording draw from their own streams, so they do not shift the anatomy's draws.
  at::Generator noise =
      at::detail::createCPUGenerator(derive_seed(seed ^ name_hash("noise"), static_cast<uint64_t>(index)));
  for (const auto& sequence : choose_sequences(rng, study.diagnosis)) {
    const Acquisition acquisition = random_acquisition(rng, head, sequence, size);
    const at::Tensor points = head_points(acquisition, head);
    at::Tensor fractions = tissue_fractions(head, points, kComponents);
    at::Tensor lesion_share = at::zeros({points.size(0)}, points.options());
    if (abnormal) lesion_share = apply_lesion(lesion, head, points, fractions);
    SynthScan scan;
    scan.name = sequence;
    scan.volume = render(sequence, fractions, acquisition, points, rng, noise);
    const auto& d = acquisition.dims;
    scan.lesion_fraction = lesion_share.view({d[2], d[1], d[0]}).permute({2, 1, 0});
    study.scans.push_back(std::move(scan));
  }
  Random report_rng(derive_seed(seed ^ name_hash("report"), static_cast<uint64_t>(index)));
  study.reports = write_mri_reports(study, report_rng);
  return study;
}

}  // namespace hlip::data
