#pragma once
// Synthetic radiology studies: procedural brain MRI and head CT with findings, reports and labels that agree
// with the images, so the demo, the tests and quick ablations run the real path (files → prepare → train →
// zero-shot) on any machine. See docs/synthetic.md for what is generated and why.
//
//   hlip::data::SynthOptions options;
//   options.out_dir = "synth";
//   options.studies = 200;
//   auto summary = hlip::data::write_synthetic_dataset(options);   // NIfTI files, studies.jsonl, label CSVs
//
//   auto study = hlip::data::generate_mri_study(/*seed=*/0, /*index=*/3, hlip::data::SynthSize::kSmall);
//   auto ct = hlip::data::generate_ct_study(/*seed=*/0, /*index=*/3, hlip::data::SynthSize::kSmall);

#include <ATen/ATen.h>

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "hlip/io/volume.h"

namespace hlip::data {

enum class SynthSize { kSmall, kFull };
enum class SynthModality { kMri, kCt, kBoth };

// The Pub-Brain-5-like classes of a synthetic MRI study, in label-column order.
const std::vector<std::string>& mri_classes();

// The haemorrhage types of a synthetic head CT ("epidural", "intraparenchymal", "intraventricular",
// "subarachnoid", "subdural"), and its RSNA-like label columns: "Any", then each type capitalised, in the
// order of HLIP's rsna.csv.
const std::vector<std::string>& ct_haemorrhage_types();
const std::vector<std::string>& ct_label_columns();

// One finding as the generator placed it (the ground truth of labels, reports and VQA questions).
struct SynthFinding {
  std::string type;         // MRI: "glioma", "meningioma", "metastasis", "stroke"; CT: ct_haemorrhage_types()
  std::string side;         // "left" or "right" ("" for blood in the basal cisterns)
  std::string lobe;         // "frontal", "parietal", "temporal", "occipital" ("" where it names none)
  std::string territory;    // stroke only: "MCA", "ACA", "PCA"
  std::string location;     // CT: "convexity", "basal cisterns", "lateral ventricle" or "parenchyma"
  double size_mm = 0;       // largest diameter of the lesion (of the largest one for metastases); CT: the
                            // haematoma's diameter, a collection's extent along the inner table, the depth
                            // of intraventricular layering
  double thickness_mm = 0;  // CT subdural and epidural: largest thickness
  double midline_shift_mm = 0;  // CT: the shift this finding's mass effect causes (0: none)
  int count = 1;                // metastases: number of lesions
  bool enhancing = false;
  bool edema = false;
  bool fracture = false;  // CT epidural: a linear fracture of the overlying skull
};

struct SynthScan {
  std::string name;   // "T1", "T2", "FLAIR", "T1c", "DWI"
  io::Volume volume;  // int16 voxels [I, J, K] with their affine
  at::Tensor
      lesion_fraction;  // float32 [I, J, K]: share of each voxel covered by the finding (0 when normal)
  // CT: each finding's own share of each voxel (the blood of that haemorrhage), in the order of
  // SynthStudy::findings.
  std::vector<at::Tensor> finding_fractions;
};

struct SynthStudy {
  std::string id;
  std::string modality = "mri";
  std::vector<SynthScan> scans;
  std::vector<SynthFinding> findings;  // empty for a normal study; CT: one or two haemorrhage types
  std::string diagnosis;               // one of mri_classes(); CT: "normal" or the first finding's type
  std::map<std::string, int> labels;   // one-hot over mri_classes(); CT: 0/1 for each of ct_label_columns()
  double midline_shift_mm = 0;         // CT: towards the side opposite the mass (0: none)
  bool dicom = false;                  // CT: written as a DICOM series (one file per slice), not NIfTI
  // Report sentences by source: "verbose" (a detailed radiologist style) and "terse" (a short summariser
  // style).
  std::map<std::string, std::vector<std::string>> reports;
};

// A closed question about a synthetic study and its answer, from the generator's ground truth (VQA).
struct SynthQuestion {
  std::string type;  // MRI: abnormal, finding, side, sequence, enhancement; CT: abnormal, finding, side,
                     // midline_shift
  std::string question;
  std::string answer;
};

// The study's questions (written as the manifest's "qa"): MRI "Is there an abnormality?" (yes/no), "What is
// the main finding?" (the diagnosis), and for a lesion "Which side is the lesion on?" (left/right), "Which
// sequence shows the lesion best?" (DWI for a stroke, FLAIR for a glioma, T1c otherwise), "Does the lesion
// enhance after contrast?" (yes/no, tumours of studies with T1c). CT: "Is there intracranial haemorrhage?",
// "What type of haemorrhage is there?" (none or the first type), "Which side is the haemorrhage on?" (when
// it has one), "Is there midline shift?". Draws nothing: the same study gives the same questions.
std::vector<SynthQuestion> synth_questions(const SynthStudy& study);

// Study `index` of the dataset with `seed`: the same (seed, index) always gives the same study, whatever
// other studies are generated and in what order.
SynthStudy generate_mri_study(uint64_t seed, int64_t index, SynthSize size);

// Head CT study `index`: one axial series "CT" in Hounsfield units (int16), with or without haemorrhage.
// Independent of the MRI study with the same index.
SynthStudy generate_ct_study(uint64_t seed, int64_t index, SynthSize size);

struct SynthOptions {
  std::string out_dir;
  int64_t studies = 100;
  uint64_t seed = 0;
  SynthSize size = SynthSize::kSmall;
  // kBoth alternates: study 2m is MRI study m ("mri-<m>"), study 2m+1 is CT study m ("ct-<m>").
  SynthModality modality = SynthModality::kMri;
  std::array<double, 3> splits{0.8, 0.1, 0.1};  // train, val, test shares
  bool progress = true;
  int threads = 0;  // studies generated at once; 0 = LibTorch's intra-op thread count (hlip --threads)
};

struct SynthSummary {
  int64_t studies = 0;
  int64_t scans = 0;
  std::map<std::string, int64_t> per_class;  // "mri normal", "ct subdural", ...: per modality and diagnosis
  std::map<std::string, int64_t> ct_labels;  // CT studies positive for each of ct_label_columns()
  int64_t dicom_series = 0;
  std::map<std::string, int64_t> per_split;
  double seconds = 0;
};

// Writes `out_dir/mri/<study>/<sequence>.nii.gz`, `out_dir/ct/<study>/CT.nii.gz` or the DICOM series
// `out_dir/ct/<study>/CT/slice-NNNN.dcm`, `out_dir/studies.jsonl` (the manifest),
// `out_dir/labels_<split>.csv` (MRI), `out_dir/labels_ct_<split>.csv` (CT) and `out_dir/README.md`. Files are
// written atomically; the same options give byte-identical files.
SynthSummary write_synthetic_dataset(const SynthOptions& options);

}  // namespace hlip::data
