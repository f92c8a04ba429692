#pragma once
// Report sentences of a synthetic study, in two source styles, consistent with its findings and protocol.

#include <map>
#include <string>
#include <vector>

#include "hlip/core/random.h"
#include "hlip/data/synth.h"

namespace hlip::data {

// {"verbose": [...], "terse": [...]}: the finding sentences first, then negations and incidental normal
// findings. A normal study states no finding.
std::map<std::string, std::vector<std::string>> write_mri_reports(const SynthStudy& study, Random& rng);

// The same for a head CT: haemorrhage sentences (type, side, location, size or thickness, midline shift),
// negations only of the types that are absent, incidental normal findings.
std::map<std::string, std::vector<std::string>> write_ct_reports(const SynthStudy& study, Random& rng);

}  // namespace hlip::data
