#!/usr/bin/python3
"""Reference paired bootstrap of an ablation step (tests/unit/ablate/test_stats.cpp).

Two arms, two seeds each, scored on 40 studies and 3 classes (the scores.csv rows of each run are stored, so
the C++ test needs no generator). The metric is the macro AUC (scikit-learn's roc_auc_score per class, mean
over classes); each resample of the studies evaluates it for every seed's scores and averages over seeds; the
replicate is B - A. The resamples are drawn exactly as hlip draws them: std::mt19937_64(seed), an index by
rejection (draw < 2^64 - 2^64 mod n, then draw mod n), n draws per resample; a resample in which a class
lacks positives or negatives is skipped and counted. The interval is numpy's linear percentile of the
replicates, the p-value 2 min(share <= 0, share >= 0). So the C++ interval must equal this one to rounding.

One (study, class) row is missing from one run (hlip leaves that pair out everywhere) and some studies have
no row for a class (the class skips them), as zero-shot's scores.csv does for skipped pairs.

Writes tests/data/ablate/stats_ref.json. Run: /usr/bin/python3 tests/ref/make_ablate_stats_ref.py
"""

import json
import os

import numpy as np
from sklearn.metrics import roc_auc_score

OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "ablate", "stats_ref.json")
MASK = (1 << 64) - 1


class MersenneTwister64:
    """std::mt19937_64."""

    def __init__(self, seed):
        self.state = [seed & MASK]
        for i in range(1, 312):
            previous = self.state[-1]
            self.state.append((6364136223846793005 * (previous ^ (previous >> 62)) + i) & MASK)
        self.index = 312

    def _twist(self):
        for i in range(312):
            x = (self.state[i] & 0xFFFFFFFF80000000) | (self.state[(i + 1) % 312] & 0x7FFFFFFF)
            shifted = x >> 1
            if x & 1:
                shifted ^= 0xB5026F5AA96619E9
            self.state[i] = self.state[(i + 156) % 312] ^ shifted
        self.index = 0

    def __call__(self):
        if self.index >= 312:
            self._twist()
        y = self.state[self.index]
        self.index += 1
        y ^= (y >> 29) & 0x5555555555555555
        y ^= (y << 17) & 0x71D67FFFEDA60000
        y ^= (y << 37) & 0xFFF7EEE000000000
        y ^= y >> 43
        return y & MASK


def uniform_index(rng, n):
    limit = MASK - MASK % n
    draw = rng()
    while draw >= limit:
        draw = rng()
    return draw % n


def check_generator():
    rng = MersenneTwister64(5489)
    for _ in range(9999):
        rng()
    assert rng() == 9981545732273789042  # the C++ standard's check value of mt19937_64


def main():
    check_generator()
    generator = np.random.default_rng(7)
    studies = [f"study-{i:03d}" for i in range(40)]
    classes = ["glioma", "normal", "stroke"]
    labels = {}
    for s, study in enumerate(studies):
        for c, cls in enumerate(classes):
            if cls == "stroke" and s % 5 == 4:
                continue  # skipped pair: no row in any run
            positive_rate = 0.15 if cls == "stroke" else 0.4
            labels[(cls, study)] = int(generator.random() < positive_rate)
    runs = {}
    for arm, signal in (("a", 0.6), ("b", 1.2)):
        for seed in (0, 1):
            rows = []
            for (cls, study), label in sorted(labels.items(), key=lambda kv: (kv[0][1], kv[0][0])):
                score = signal * label + generator.normal()
                rows.append({"study": study, "class": cls, "score": float(score), "label": label})
            runs[f"{arm}{seed}"] = rows
    dropped = ("normal", "study-007")
    runs["b1"] = [r for r in runs["b1"] if (r["class"], r["study"]) != dropped]

    kept = {key: label for key, label in labels.items() if key != dropped}
    used_classes = sorted(c for c in classes if len({kept[k] for k in kept if k[0] == c}) == 2)
    used_studies = sorted({k[1] for k in kept if k[0] in used_classes})
    score_of = {name: {(r["class"], r["study"]): r["score"] for r in rows} for name, rows in runs.items()}

    def macro(run, indices):
        total = 0.0
        for cls in used_classes:
            y, x = [], []
            for i in indices:
                key = (cls, used_studies[i])
                if key in kept:
                    y.append(kept[key])
                    x.append(score_of[run][key])
            if len(set(y)) < 2:
                return None
            total += roc_auc_score(y, x)
        return total / len(used_classes)

    def seed_mean(arm, indices):
        values = [macro(f"{arm}{seed}", indices) for seed in (0, 1)]
        if any(v is None for v in values):
            return None
        return sum(values) / len(values)

    resamples, confidence, seed = 400, 0.95, 11
    n = len(used_studies)
    everything = list(range(n))
    estimate = seed_mean("b", everything) - seed_mean("a", everything)
    rng = MersenneTwister64(seed)
    replicates, skipped = [], 0
    for _ in range(resamples):
        indices = [uniform_index(rng, n) for _ in range(n)]
        b = seed_mean("b", indices)
        if b is None:
            skipped += 1
            continue
        a = seed_mean("a", indices)
        replicates.append(b - a)
    tail = (1 - confidence) / 2
    lower, upper = np.percentile(replicates, [100 * tail, 100 * (1 - tail)])
    at_most, at_least = sum(d <= 0 for d in replicates), sum(d >= 0 for d in replicates)
    p_value = min(1.0, 2 * min(at_most, at_least) / len(replicates))
    per_seed = {f"{arm}{seed}": macro(f"{arm}{seed}", everything) for arm in "ab" for seed in (0, 1)}

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({
            "generator": "tests/ref/make_ablate_stats_ref.py",
            "options": {"resamples": resamples, "confidence": confidence, "seed": seed},
            "runs": runs,
            "expected": {
                "classes": used_classes, "n_studies": n, "dropped_pairs": 1,
                "estimate": estimate, "lower": float(lower), "upper": float(upper), "p_value": p_value,
                "resamples_used": len(replicates), "resamples_skipped": skipped,
                "per_seed_macro_auc": per_seed,
            },
        }, f, indent=1)
        f.write("\n")
    print(f"{OUT}: estimate {estimate:.4f}, interval {lower:.4f} to {upper:.4f}, {skipped} skipped")


if __name__ == "__main__":
    main()
