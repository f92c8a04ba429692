#pragma once
// Synthetic radiology studies: procedural brain MRI with findings, reports and labels that agree with the
// images, so the demo, the tests and quick ablations run the real path (files → prepare → train → zero-shot)
// on any machine. See docs/synthetic.md for what is generated and why.
//
//   hlip::data::SynthOptions options;
//   options.out_dir = "synth";
//   options.studies = 200;
//   auto summary = hlip::data::write_synthetic_dataset(options);   // NIfTI files, studies.jsonl, label CSVs
//
//   auto study = hlip::data::generate_mri_study(/*seed=*/0, /*index=*/3, hlip::data::SynthSize::kSmall);

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hlip/io/volume.h"

namespace hlip::data {

enum class SynthSize { kSmall, kFull };

// The Pub-Brain-5-like classes of a synthetic MRI study, in label-column order.
const std::vector<std::string>& mri_classes();

// One finding as the generator placed it (the ground truth of labels, reports and VQA questions).
struct SynthFinding {
  std::string type;       // "glioma", "meningioma", "metastasis", "stroke"
  std::string side;       // "left" or "right"
  std::string lobe;       // "frontal", "parietal", "temporal", "occipital"
  std::string territory;  // stroke only: "MCA", "ACA", "PCA"
  double size_mm = 0;     // largest diameter of the lesion (of the largest one for metastases)
  int count = 1;          // metastases: number of lesions
  bool enhancing = false;
  bool edema = false;
};

struct SynthScan {
  std::string name;   // "T1", "T2", "FLAIR", "T1c", "DWI"
  io::Volume volume;  // int16 voxels [I, J, K] with their affine
  at::Tensor
      lesion_fraction;  // float32 [I, J, K]: share of each voxel covered by the finding (0 when normal)
};

struct SynthStudy {
  std::string id;
  std::string modality = "mri";
  std::vector<SynthScan> scans;
  std::vector<SynthFinding> findings;  // empty for a normal study
  std::string diagnosis;               // one of mri_classes()
  std::map<std::string, int> labels;   // one-hot over mri_classes()
  // Report sentences by source: "verbose" (a detailed radiologist style) and "terse" (a short summariser
  // style).
  std::map<std::string, std::vector<std::string>> reports;
};

// Study `index` of the dataset with `seed`: the same (seed, index) always gives the same study, whatever
// other studies are generated and in what order.
SynthStudy generate_mri_study(uint64_t seed, int64_t index, SynthSize size);

struct SynthOptions {
  std::string out_dir;
  int64_t studies = 100;
  uint64_t seed = 0;
  SynthSize size = SynthSize::kSmall;
  std::array<double, 3> splits{0.8, 0.1, 0.1};  // train, val, test shares
  bool progress = true;
  int threads = 0;  // studies generated at once; 0 = LibTorch's intra-op thread count (hlip --threads)
};

struct SynthSummary {
  int64_t studies = 0;
  int64_t scans = 0;
  std::map<std::string, int64_t> per_class;
  std::map<std::string, int64_t> per_split;
  double seconds = 0;
};

// Writes `out_dir/mri/<study>/<sequence>.nii.gz`, `out_dir/studies.jsonl` (the manifest),
// `out_dir/labels_<split>.csv` and `out_dir/README.md`. Files are written atomically; the same options give
// byte-identical files.
SynthSummary write_synthetic_dataset(const SynthOptions& options);

}  // namespace hlip::data
