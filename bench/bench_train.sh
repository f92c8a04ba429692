#!/bin/bash
# Training throughput: `hlip train` against a Python training step of the same model (bench/baseline_train.py,
# Debian's python3-torch), same threads, fp32, run one after the other on this machine.
#
#   bench/bench_train.sh [tiny|vit-b|precision|ddp|all]    (default: tiny)
#
# tiny:  hlip-tiny, batch 32, 4 scans of 16×64×64 (configs/presets/demo.toml), context 128 — the demo's step.
#        200 synthetic studies (all in the training split), 25 steps; the first 5 are not counted.
# vit-b: clip_vit_base_scan_study_dualdinotxt1568 (ViT-B/16 scan+study, BERT-base, context 256), batch 1, 2
#        scans of 48×224×224 (the mri-brain preset), 4 steps; the first is not counted. About 10 minutes.
# precision: hlip-tiny as in `tiny`, trained by hlip with --precision fp32, amp_bf16 and pure_bf16 (same seed,
#        same batches): step time and the loss at the last step.
# ddp:   hlip-tiny as in `tiny`: one process of all threads with batch 32 against `--nproc-per-node 2` with
#        batch 16 per rank (half the threads each), plain and with --gather-with-grad (docs/distributed.md).
# hlip's time per step is `step_s` of metrics.jsonl (it includes waiting for the loader's workers, which read
# the prepared cache in the background); Python's is the model step alone, on random tensors. Python runs
# twice: with libgomp's default wait policy (as a user would run it) and with OMP_WAIT_POLICY=PASSIVE, which
# every hlip executable sets (docs/performance.md).
#
# Environment: HLIP_BIN (default build/bin/hlip), HLIP_BENCH_DIR (work folder, default a fresh one under /tmp,
# removed at the end unless given), THREADS (default: all cores).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
hlip=${HLIP_BIN:-$root/build/bin/hlip}
threads=${THREADS:-$(nproc)}
which=${1:-tiny}
case "$which" in tiny | vit-b | precision | ddp | all) ;; *)
  echo "usage: bench/bench_train.sh [tiny|vit-b|precision|ddp|all]" >&2
  exit 2
  ;;
esac
if [[ -n "${HLIP_BENCH_DIR:-}" ]]; then
  work=$HLIP_BENCH_DIR
  mkdir -p "$work"
else
  work=$(mktemp -d /tmp/hlip_bench_train.XXXXXX)
  trap 'rm -rf "$work"' EXIT
fi

median_step() { # metrics.jsonl, steps to skip
  /usr/bin/python3 - "$1" "$2" <<'EOF'
import json, statistics, sys
steps = [json.loads(l) for l in open(sys.argv[1])]
times = [s["step_s"] for s in steps if "step_s" in s and s["step"] > int(sys.argv[2])]
print(f"{statistics.median(times):.4f} {len(times)}")
EOF
}

# prepare_data DIR PRESET STUDIES: synthetic studies (all for training), their cache and a vocabulary.
prepare_data() {
  local dir=$1 preset=$2 studies=$3
  mkdir -p "$dir"
  [[ -f $dir/cache/studies.jsonl ]] && return 0
  "$hlip" synth --out "$dir/data" --studies "$studies" --seed 0 --splits 1,0,0 --no-progress > /dev/null
  "$hlip" prepare --manifest "$dir/data/studies.jsonl" --out "$dir/cache" --preset "$preset" --no-progress > /dev/null
  "$hlip" vocab --manifest "$dir/data/studies.jsonl" --out "$dir/tokenizer/vocab.txt" --size 1000 > /dev/null
}

# train_run DIR RUN MODEL BATCH SCANS EPOCHS PRECISION [FLAG...]: `hlip train` into DIR/RUN.
train_run() {
  local dir=$1 run=$2 model=$3 batch=$4 scans=$5 epochs=$6 precision=$7
  shift 7
  rm -rf "${dir:?}/$run"
  "$hlip" --threads "$threads" train --model "$model" --train-data "$dir/cache" --tokenizer "$dir/tokenizer" \
    --batch-size "$batch" --num-scans "$scans" --epochs "$epochs" --precision "$precision" --log-every-steps 1 \
    --val-frequency 0 --zeroshot-frequency 0 --save-frequency 1000 --logs "$dir" --name "$run" --no-progress \
    "$@" > "$dir/$run.log" 2>&1
}

# bench NAME MODEL PRESET STUDIES BATCH SCANS EPOCHS SKIP
bench() {
  local name=$1 model=$2 preset=$3 studies=$4 batch=$5 scans=$6 epochs=$7 skip=$8
  local dir=$work/$name
  prepare_data "$dir" "$preset" "$studies"
  train_run "$dir" run "$model" "$batch" "$scans" "$epochs" fp32
  read -r hlip_s hlip_n < <(median_step "$dir/run/metrics.jsonl" "$skip")
  local config=$root/configs/models/$model.json py_default py_passive
  py_default=$(env -u OMP_WAIT_POLICY /usr/bin/python3 "$root/bench/baseline_train.py" --config "$config" \
    --batch "$batch" --scans "$scans" --steps "$hlip_n" --warmup "$skip" --threads "$threads")
  py_passive=$(OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 "$root/bench/baseline_train.py" --config "$config" \
    --batch "$batch" --scans "$scans" --steps "$hlip_n" --warmup "$skip" --threads "$threads")
  /usr/bin/python3 - "$name" "$batch" "$hlip_s" "$hlip_n" "$py_default" "$py_passive" <<'EOF'
import json, sys
name, batch, hlip_s, n = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
default, passive = json.loads(sys.argv[5]), json.loads(sys.argv[6])
print(f"{name}: batch {batch}, median over {n} steps")
print(f"  hlip                              {hlip_s:8.3f} s/step  {batch / hlip_s:8.3f} studies/s")
for label, r in (("Python, libgomp default", default), ("Python, OMP_WAIT_POLICY=PASSIVE", passive)):
    s = r["median_step_s"]
    print(f"  {label:32s}  {s:8.3f} s/step  {batch / s:8.3f} studies/s   hlip {s / hlip_s:.2f}x")
EOF
}

echo "threads $threads, $(date -u +%FT%TZ), $(nproc) cores"
if [[ $which == tiny || $which == all ]]; then
  bench tiny hlip-tiny "$root/configs/presets/demo.toml" 200 32 4 4 5
fi
if [[ $which == precision || $which == all ]]; then
  dir=$work/tiny
  prepare_data "$dir" "$root/configs/presets/demo.toml" 200
  echo "hlip-tiny by precision: batch 32, 4 scans, 24 steps (median step time over steps 6-24)"
  for precision in fp32 amp_bf16 pure_bf16; do
    train_run "$dir" "$precision" hlip-tiny 32 4 4 "$precision"
    read -r step_s _ < <(median_step "$dir/$precision/metrics.jsonl" 5)
    last_loss=$(/usr/bin/python3 -c 'import json, sys
steps = [d for d in map(json.loads, open(sys.argv[1])) if "step_s" in d and "loss" in d]
print("%.4f (step %d)" % (steps[-1]["loss"], steps[-1]["step"]))' "$dir/$precision/metrics.jsonl")
    printf '  %-10s %8.3f s/step  %8.2f studies/s  loss at the last step %s\n' "$precision" "$step_s" \
      "$(/usr/bin/python3 -c "print(32 / $step_s)")" "$last_loss"
  done
fi
if [[ $which == ddp || $which == all ]]; then
  dir=$work/tiny
  prepare_data "$dir" "$root/configs/presets/demo.toml" 200
  echo "hlip-tiny data-parallel: global batch 32, 4 scans, 24 steps (median step time over steps 6-24), fp32"
  ddp_line() { # label run
    read -r step_s _ < <(median_step "$dir/$2/metrics.jsonl" 5)
    printf '  %-36s %8.3f s/step  %8.2f studies/s\n' "$1" "$step_s" "$(/usr/bin/python3 -c "print(32 / $step_s)")"
  }
  train_run "$dir" ddp1 hlip-tiny 32 4 4 fp32
  ddp_line "1 process, $threads threads" ddp1
  train_run "$dir" ddp2 hlip-tiny 16 4 4 fp32 --nproc-per-node 2
  ddp_line "2 processes, batch 16 each" ddp2
  train_run "$dir" ddp2g hlip-tiny 16 4 4 fp32 --nproc-per-node 2 --gather-with-grad
  ddp_line "2 processes, --gather-with-grad" ddp2g
fi
if [[ $which == vit-b || $which == all ]]; then
  bench vit-b clip_vit_base_scan_study_dualdinotxt1568 mri-brain 4 1 2 1 1
fi
