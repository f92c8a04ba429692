#include "synth_reports.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <utility>

namespace hlip::data {
namespace {

std::string capitalised(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

std::string centimetres(double mm) {
  return fmt::format("{:.1f}", mm / 10.0);
}

std::string territory_name(const std::string& territory) {
  if (territory == "MCA") return "middle cerebral artery";
  if (territory == "ACA") return "anterior cerebral artery";
  return "posterior cerebral artery";
}

std::string count_word(int count) {
  static const char* const kWords[] = {"zero", "one", "two", "three", "four", "five"};
  return count >= 0 && count <= 5 ? kWords[count] : std::to_string(count);
}

bool has(const SynthStudy& study, const std::string& sequence) {
  return std::any_of(study.scans.begin(), study.scans.end(),
                     [&](const SynthScan& s) { return s.name == sequence; });
}

// The verbose report: the finding sentences, then the other sentences shuffled together with 1–3 of the
// incidental normal findings.
std::vector<std::string> verbose_report(std::vector<std::string> finding_sentences,
                                        std::vector<std::string> other, std::vector<std::string> incidental,
                                        Random& rng) {
  rng.shuffle(incidental);
  other.insert(other.end(), incidental.begin(), incidental.begin() + rng.integer(1, 3));
  rng.shuffle(other);
  finding_sentences.insert(finding_sentences.end(), other.begin(), other.end());
  return finding_sentences;
}

std::vector<std::string> verbose_finding(const SynthFinding& f, const SynthStudy& study, Random& rng) {
  const std::string size = centimetres(f.size_mm);
  std::vector<std::string> sentences;
  if (f.type == "glioma") {
    sentences.push_back(rng.pick(std::vector<std::string>{
        fmt::format("There is an infiltrative intra-axial mass in the {} {} lobe measuring {} cm, consistent "
                    "with a glioma.",
                    f.side, f.lobe, size),
        fmt::format("{} {} lobe intra-axial mass of approximately {} cm, in keeping with a glial neoplasm.",
                    capitalised(f.side), f.lobe, size),
        fmt::format("An ill-defined FLAIR hyperintense lesion in the {} {} lobe ({} cm) represents a glioma.",
                    f.side, f.lobe, size)}));
    if (has(study, "T1c")) {
      sentences.push_back(
          f.enhancing
              ? rng.pick(std::vector<std::string>{
                    "It shows irregular rim enhancement around a necrotic centre.",
                    "There is peripheral ring enhancement after contrast, suggesting a high-grade tumour."})
              : rng.pick(std::vector<std::string>{"The lesion does not enhance after contrast.",
                                                  "No enhancement is seen, suggesting a low-grade tumour."}));
    }
    sentences.push_back(rng.pick(
        std::vector<std::string>{"Surrounding vasogenic oedema is present.",
                                 "There is perilesional FLAIR hyperintensity in keeping with oedema."}));
  } else if (f.type == "meningioma") {
    sentences.push_back(rng.pick(std::vector<std::string>{
        fmt::format("There is an extra-axial, dural-based mass over the {} {} convexity measuring {} cm, "
                    "consistent with a "
                    "meningioma.",
                    f.side, f.lobe, size),
        fmt::format(
            "A {} cm homogeneously enhancing extra-axial lesion along the {} {} dura is likely a meningioma.",
            size, f.side, f.lobe),
        fmt::format("{} {} convexity meningioma measuring {} cm.", capitalised(f.side), f.lobe, size)}));
    sentences.push_back("It enhances homogeneously after contrast.");
  } else if (f.type == "metastasis") {
    if (f.count == 1) {
      sentences.push_back(rng.pick(std::vector<std::string>{
          fmt::format(
              "A solitary enhancing lesion in the {} {} lobe measuring {} cm is suspicious for a metastasis.",
              f.side, f.lobe, size),
          fmt::format("Single {} {} lobe metastasis of {} cm.", f.side, f.lobe, size)}));
    } else {
      sentences.push_back(rng.pick(std::vector<std::string>{
          fmt::format("There are {} enhancing lesions, the largest in the {} {} lobe measuring {} cm, in "
                      "keeping with "
                      "metastatic disease.",
                      count_word(f.count), f.side, f.lobe, size),
          fmt::format("Multiple brain metastases ({}), the largest {} cm in the {} {} lobe.", f.count, size,
                      f.side, f.lobe)}));
    }
    sentences.push_back("There is surrounding vasogenic oedema.");
  } else if (f.type == "stroke") {
    sentences.push_back(rng.pick(std::vector<std::string>{
        fmt::format("Restricted diffusion in the {} {} territory involving the {} lobe, consistent with an "
                    "acute infarct.",
                    f.side, f.territory, f.lobe),
        fmt::format("Acute ischaemic infarct in the {} {} territory.", f.side, territory_name(f.territory)),
        fmt::format("There is an acute {} {} territory stroke with diffusion restriction.", f.side,
                    f.territory)}));
    sentences.push_back("Corresponding FLAIR hyperintensity is present.");
  }
  return sentences;
}

std::string terse_finding(const SynthFinding& f, Random& rng) {
  const std::string size = centimetres(f.size_mm);
  if (f.type == "glioma") {
    return fmt::format("{} {} glioma, {} cm{}.", capitalised(f.side), f.lobe, size,
                       f.enhancing ? ", enhancing" : "");
  }
  if (f.type == "meningioma")
    return fmt::format("{} {} meningioma, {} cm.", capitalised(f.side), f.lobe, size);
  if (f.type == "metastasis") {
    return f.count == 1 ? fmt::format("Solitary {} {} metastasis, {} cm.", f.side, f.lobe, size)
                        : fmt::format("{} brain metastases, largest {} {} {} cm.",
                                      capitalised(count_word(f.count)), f.side, f.lobe, size);
  }
  return rng.bernoulli(0.5) ? fmt::format("Acute {} {} infarct.", f.side, f.territory)
                            : fmt::format("Acute {} {} territory stroke.", f.side, f.territory);
}

}  // namespace

std::map<std::string, std::vector<std::string>> write_mri_reports(const SynthStudy& study, Random& rng) {
  const bool normal = study.findings.empty();
  const bool mass = !normal && study.findings.front().type != "stroke";
  std::vector<std::string> finding_sentences;
  for (const auto& finding : study.findings) {
    const auto sentences = verbose_finding(finding, study, rng);
    finding_sentences.insert(finding_sentences.end(), sentences.begin(), sentences.end());
  }

  std::vector<std::string> other;
  if (normal) {
    other.push_back(
        rng.pick(std::vector<std::string>{"No acute intracranial abnormality.", "Normal MRI of the brain.",
                                          "The brain parenchyma is normal in signal."}));
  }
  if (normal || mass) {
    other.push_back(has(study, "DWI") ? "No restricted diffusion to suggest acute infarction."
                                      : "No evidence of acute infarction.");
  }
  if (!mass) {
    other.push_back(
        rng.pick(std::vector<std::string>{"No intracranial mass lesion.", "No space-occupying lesion."}));
    if (has(study, "T1c")) other.push_back("No abnormal enhancement.");
  }
  std::vector<std::string> incidental{"The ventricles are normal in size and configuration.",
                                      "Grey-white matter differentiation is preserved.",
                                      "The orbits and paranasal sinuses are unremarkable.",
                                      "The major intracranial flow voids are present.",
                                      "No extra-axial collection.",
                                      "No midline shift."};
  std::vector<std::string> verbose =
      verbose_report(std::move(finding_sentences), std::move(other), std::move(incidental), rng);

  std::vector<std::string> terse;
  for (const auto& finding : study.findings)
    terse.push_back(terse_finding(finding, rng));
  if (normal) terse.push_back(rng.bernoulli(0.5) ? "Normal study." : "No acute intracranial abnormality.");
  if (rng.bernoulli(0.5)) terse.push_back("No haemorrhage.");
  return {{"verbose", verbose}, {"terse", terse}};
}

namespace {

std::string millimetres(double mm) {
  return fmt::format("{:.0f}", mm);
}

std::string opposite(const std::string& side) {
  return side == "left" ? "right" : "left";
}

// "haemorrhage" or "hemorrhage", "haematoma" or "hematoma": reports use both spellings.
struct Spelling {
  std::string haemorrhage, haematoma;
};

Spelling random_spelling(Random& rng) {
  return rng.bernoulli(0.5) ? Spelling{"haemorrhage", "haematoma"} : Spelling{"hemorrhage", "hematoma"};
}

std::vector<std::string> verbose_ct_finding(const SynthFinding& f, Random& rng) {
  const Spelling w = random_spelling(rng);
  const std::string side = f.side, lobe = f.lobe;
  if (f.type == "intraparenchymal") {
    const std::string size = centimetres(f.size_mm);
    return {rng.pick(std::vector<std::string>{
                fmt::format("There is an acute intraparenchymal {} in the {} {} lobe measuring {} cm.",
                            w.haemorrhage, side, lobe, size),
                fmt::format("{} {} lobe intracerebral {} of {} cm.", capitalised(side), lobe, w.haemorrhage,
                            size),
                fmt::format("A {} cm hyperdense intraparenchymal {} is seen in the {} {} lobe.", size,
                            w.haematoma, side, lobe)}),
            rng.pick(std::vector<std::string>{"It has a thin rim of surrounding low-density oedema.",
                                              "There is perihaematomal oedema.",
                                              "A low-attenuation rim of oedema surrounds it."})};
  }
  if (f.type == "subdural") {
    const std::string thickness = millimetres(f.thickness_mm);
    return {rng.pick(std::vector<std::string>{
        fmt::format("There is an acute {} subdural {} over the {} convexity measuring {} mm in thickness.",
                    side, w.haematoma, lobe, thickness),
        fmt::format("Crescentic hyperdense extra-axial collection along the {} cerebral convexity, centred "
                    "over the {} "
                    "lobe, {} mm thick, consistent with an acute subdural {}.",
                    side, lobe, thickness, w.haemorrhage),
        fmt::format("Acute {}-sided subdural {} over the {} lobe, maximal thickness {} mm.", side,
                    w.haemorrhage, lobe, thickness)})};
  }
  if (f.type == "epidural") {
    const std::string thickness = millimetres(f.thickness_mm);
    std::vector<std::string> sentences{rng.pick(std::vector<std::string>{
        fmt::format(
            "There is a biconvex hyperdense extra-axial collection over the {} {} lobe measuring {} mm, "
            "consistent with an acute epidural {}.",
            side, lobe, thickness, w.haematoma),
        fmt::format("Acute {} {} extradural {}, {} mm thick.", side, lobe, w.haematoma, thickness),
        fmt::format("{} {} epidural {} with a lentiform configuration, up to {} mm thick.", capitalised(side),
                    lobe, w.haemorrhage, thickness)})};
    if (f.fracture) {
      sentences.push_back(rng.pick(std::vector<std::string>{
          fmt::format("There is an overlying {} {} skull fracture.", side, lobe),
          fmt::format("A linear fracture of the overlying {} bone is present.", lobe),
          "It lies beneath a calvarial fracture."}));
    }
    return sentences;
  }
  if (f.type == "subarachnoid") {
    if (f.location == "basal cisterns") {
      return {rng.pick(std::vector<std::string>{
          fmt::format("There is subarachnoid {} in the basal cisterns.", w.haemorrhage),
          fmt::format("Hyperdense blood fills the basal cisterns, consistent with subarachnoid {}.",
                      w.haemorrhage),
          fmt::format("Basal cisternal subarachnoid {} extending into the Sylvian fissures.",
                      w.haemorrhage)})};
    }
    return {rng.pick(std::vector<std::string>{
        fmt::format("There is subarachnoid {} within the {} {} sulci.", w.haemorrhage, side, lobe),
        fmt::format("Thin hyperdense subarachnoid blood along the {} {} convexity.", side, lobe),
        fmt::format("Acute {} convexity subarachnoid {} over the {} lobe.", side, w.haemorrhage, lobe)})};
  }
  return {rng.pick(std::vector<std::string>{
      fmt::format("There is intraventricular {} layering in the occipital horn of the {} lateral ventricle.",
                  w.haemorrhage, side),
      fmt::format("Intraventricular {} with a blood-fluid level in the {} lateral ventricle.", w.haemorrhage,
                  side),
      fmt::format("Dependent intraventricular blood in the {} lateral ventricle.", side)})};
}

std::string terse_ct_finding(const SynthFinding& f, Random& rng) {
  const Spelling w = random_spelling(rng);
  if (f.type == "intraparenchymal") {
    return fmt::format("{} {} intraparenchymal {}, {} cm.", capitalised(f.side), f.lobe, w.haemorrhage,
                       centimetres(f.size_mm));
  }
  if (f.type == "subdural")
    return fmt::format("{} subdural {}, {} mm.", capitalised(f.side), w.haematoma,
                       millimetres(f.thickness_mm));
  if (f.type == "epidural") {
    return fmt::format("{} epidural {}, {} mm{}.", capitalised(f.side), w.haematoma,
                       millimetres(f.thickness_mm), f.fracture ? ", with skull fracture" : "");
  }
  if (f.type == "subarachnoid") {
    return f.location == "basal cisterns"
               ? fmt::format("Basal cisternal subarachnoid {}.", w.haemorrhage)
               : fmt::format("Subarachnoid {}, {} {} sulci.", w.haemorrhage, f.side, f.lobe);
  }
  return fmt::format("Intraventricular {}, {} lateral ventricle.", w.haemorrhage, f.side);
}

}  // namespace

std::map<std::string, std::vector<std::string>> write_ct_reports(const SynthStudy& study, Random& rng) {
  auto present = [&](const std::string& type) {
    return std::any_of(study.findings.begin(), study.findings.end(),
                       [&](const SynthFinding& f) { return f.type == type; });
  };
  const bool normal = study.findings.empty();
  const bool shifted = study.midline_shift_mm > 0;
  std::string shift_side;  // where the midline moved: away from the mass
  for (const auto& f : study.findings) {
    if (f.midline_shift_mm > 0) shift_side = opposite(f.side);
  }
  const std::string shift_mm = fmt::format("{:.1f}", study.midline_shift_mm);
  const bool cisternal = std::any_of(study.findings.begin(), study.findings.end(),
                                     [](const SynthFinding& f) { return f.location == "basal cisterns"; });

  std::vector<std::string> finding_sentences;
  for (const auto& finding : study.findings) {
    const auto sentences = verbose_ct_finding(finding, rng);
    finding_sentences.insert(finding_sentences.end(), sentences.begin(), sentences.end());
  }
  if (shifted) {
    finding_sentences.push_back(rng.pick(std::vector<std::string>{
        fmt::format("There is mass effect with {} mm of midline shift to the {}.", shift_mm, shift_side),
        fmt::format("Midline shift of {} mm to the {}, with effacement of the {} lateral ventricle.",
                    shift_mm, shift_side, opposite(shift_side)),
        fmt::format("Associated mass effect: {} mm {}ward midline shift.", shift_mm, shift_side)}));
  }
  if (!normal && rng.bernoulli(0.6)) {
    finding_sentences.push_back(
        rng.pick(std::vector<std::string>{"Findings are in keeping with acute intracranial haemorrhage.",
                                          "Impression: acute intracranial hemorrhage as described."}));
  }

  // Negations name only what is absent.
  std::vector<std::string> other;
  if (normal) {
    other.push_back(
        rng.pick(std::vector<std::string>{"No acute intracranial haemorrhage.", "No intracranial hemorrhage.",
                                          "No evidence of intracranial haemorrhage."}));
  } else {
    std::vector<std::string> negations;
    if (!present("subdural") && !present("epidural"))
      negations.push_back(rng.bernoulli(0.5) ? "No extra-axial collection."
                                             : "No subdural or epidural haematoma.");
    if (!present("intraparenchymal")) negations.push_back("No intraparenchymal haemorrhage.");
    if (!present("intraventricular")) negations.push_back("No intraventricular haemorrhage.");
    if (!present("subarachnoid")) negations.push_back("No subarachnoid haemorrhage.");
    rng.shuffle(negations);
    other.insert(other.end(), negations.begin(),
                 negations.begin() + rng.integer(std::min<int64_t>(1, static_cast<int64_t>(negations.size())),
                                                 static_cast<int64_t>(negations.size())));
  }
  if (!shifted)
    other.push_back(rng.bernoulli(0.5) ? "No midline shift." : "No mass effect or midline shift.");
  std::vector<std::string> incidental{"Grey-white matter differentiation is preserved.",
                                      "The visualised paranasal sinuses and mastoid air cells are clear.",
                                      "No acute territorial infarct."};
  const bool fractured = std::any_of(study.findings.begin(), study.findings.end(),
                                     [](const SynthFinding& f) { return f.fracture; });
  if (!fractured) incidental.push_back("The calvarium is intact.");
  if (!present("intraventricular") && !shifted) incidental.push_back("The ventricles are normal in size.");
  if (!cisternal && !shifted) incidental.push_back("The basal cisterns are patent.");
  std::vector<std::string> verbose =
      verbose_report(std::move(finding_sentences), std::move(other), std::move(incidental), rng);

  std::vector<std::string> terse;
  for (const auto& finding : study.findings)
    terse.push_back(terse_ct_finding(finding, rng));
  if (shifted) terse.push_back(fmt::format("Midline shift {} mm.", shift_mm));
  if (normal) terse.push_back(rng.bernoulli(0.5) ? "Normal CT head." : "No acute intracranial haemorrhage.");
  return {{"verbose", verbose}, {"terse", terse}};
}

}  // namespace hlip::data
