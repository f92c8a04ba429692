// The synthetic task must be learnable but not trivial: no single whole-image statistic may separate a class
// from the others. Mean intensity is the statistic a shortcut-learning model would find first.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "hlip/data/synth.h"
#include "hlip/eval/metrics.h"

namespace hlip {
namespace {

TEST(SynthSeparability, MeanIntensityDoesNotSeparateAnyClass) {
  constexpr int kStudies = 90;
  std::vector<std::string> diagnosis;
  std::map<std::string, std::vector<double>> statistics;  // per statistic, one value per study
  for (int64_t index = 0; index < kStudies; ++index) {
    const auto study = data::generate_mri_study(5, index, data::SynthSize::kSmall);
    diagnosis.push_back(study.diagnosis);
    double all = 0;
    for (const auto& scan : study.scans) {
      const double mean = scan.volume.data.to(at::kFloat).mean().item<double>();
      all += mean / static_cast<double>(study.scans.size());
      if (scan.name == "FLAIR") statistics["FLAIR mean"].push_back(mean);
    }
    statistics["mean over scans"].push_back(all);
  }
  for (const auto& name : data::mri_classes()) {
    std::vector<int> labels;
    for (const auto& d : diagnosis)
      labels.push_back(d == name ? 1 : 0);
    for (const auto& [statistic, values] : statistics) {
      const auto auc = eval::roc_auc(labels, values);
      ASSERT_TRUE(auc.value.has_value()) << name;
      // A separating statistic would give an AUC near 0 or 1; chance is 0.5.
      EXPECT_GT(*auc.value, 0.25) << statistic << " separates " << name;
      EXPECT_LT(*auc.value, 0.75) << statistic << " separates " << name;
      std::printf("%-16s %-11s AUC %.3f\n", statistic.c_str(), name.c_str(), *auc.value);
    }
  }
}

// The same for head CT: the mean HU of the series (dominated by head size, skull density and position) must
// not give away any haemorrhage label.
TEST(SynthSeparability, MeanHounsfieldUnitsDoNotSeparateAnyHaemorrhageLabel) {
  constexpr int kStudies = 80;
  std::vector<double> means;
  std::map<std::string, std::vector<int>> labels;
  for (int64_t index = 0; index < kStudies; ++index) {
    const auto study = data::generate_ct_study(5, index, data::SynthSize::kSmall);
    means.push_back(study.scans.at(0).volume.data.to(at::kFloat).mean().item<double>());
    for (const auto& column : data::ct_label_columns())
      labels[column].push_back(study.labels.at(column));
  }
  for (const auto& column : data::ct_label_columns()) {
    const auto auc = eval::roc_auc(labels.at(column), means);
    ASSERT_TRUE(auc.value.has_value()) << column;
    EXPECT_GT(*auc.value, 0.25) << "mean HU separates " << column;
    EXPECT_LT(*auc.value, 0.75) << "mean HU separates " << column;
    std::printf("%-16s %-16s AUC %.3f\n", "CT mean HU", column.c_str(), *auc.value);
  }
}

}  // namespace
}  // namespace hlip
