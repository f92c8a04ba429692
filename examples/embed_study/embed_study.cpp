// Embeds one study from its scan files with an hlip model folder and ranks text prompts against it: the
// model and its tokenizer are loaded once, the prompts encoded once, then any number of studies could be
// scored the same way.
//
//   embed_study MODEL_DIR PRESET SCAN... -- PROMPT...
//
// PRESET is a preset name (mri-brain, ct-head, ...) or a preset TOML file.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <string>
#include <vector>

#include "hlip/core/error.h"
#include "hlip/eval/embed.h"
#include "hlip/eval/zeroshot.h"
#include "hlip/model/clip.h"
#include "hlip/preprocess/preset.h"
#include "hlip/text/tokenizer.h"

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  const auto separator = std::find(args.begin(), args.end(), "--");
  if (args.size() < 3 || separator == args.end() || separator - args.begin() < 3 ||
      separator + 1 == args.end()) {
    std::cerr << "usage: embed_study MODEL_DIR PRESET SCAN... -- PROMPT...\n";
    return 2;
  }
  const std::string model_dir = args[0];
  const std::string preset_spec = args[1];
  const std::vector<std::string> scans(args.begin() + 2, separator);
  const std::vector<std::string> prompts(separator + 1, args.end());
  try {
    hlip::model::HlipClip clip = hlip::model::load_model_dir(model_dir);
    const auto tokenizer =
        hlip::text::Tokenizer::from_pretrained(hlip::model::model_dir_tokenizer(model_dir));
    const hlip::preprocess::Preset preset = std::filesystem::is_regular_file(preset_spec)
                                                ? hlip::preprocess::preset_from_toml(preset_spec)
                                                : hlip::preprocess::preset_by_name(preset_spec);
    // Each prompt is its own class, used as written ("{c}" alone as the template).
    const hlip::eval::ZeroShotClassifier classifier(*clip, tokenizer,
                                                    hlip::eval::task_from_classes(prompts, {"{c}"}));

    const at::Tensor image = hlip::eval::study_image_from_files(scans, preset);  // [N, 1, D, H, W]
    const at::Tensor embedding = hlip::eval::embed_study(*clip, image);          // [P, E], unit rows
    const at::Tensor features = embedding.unsqueeze(0);
    const at::Tensor probability = classifier.score(features)[0];
    const at::Tensor cosine = classifier.cosine(features)[0];

    std::cout << "study: " << image.size(0) << " scan(s) of " << image.size(2) << "x" << image.size(3) << "x"
              << image.size(4) << ", embedding [" << embedding.size(0) << ", " << embedding.size(1) << "]\n";
    std::vector<size_t> order(prompts.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      return probability[static_cast<int64_t>(a)].item<double>() >
             probability[static_cast<int64_t>(b)].item<double>();
    });
    for (size_t rank = 0; rank < order.size(); ++rank) {
      const auto k = static_cast<int64_t>(order[rank]);
      std::cout << rank + 1 << "  probability " << probability[k].item<double>() << "  cosine "
                << cosine[k].item<double>() << "  " << prompts[order[rank]] << "\n";
    }
  } catch (const hlip::Error& e) {
    std::cerr << "embed_study: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
