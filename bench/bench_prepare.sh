#!/usr/bin/env bash
# `hlip prepare` against nibabel + scipy.ndimage doing the same work (bench/baseline_prepare.py), per core:
# N gzip NIfTI copies of a 256×256×160 int16 brain MRI → 48×224×224 uint8 cache (preset mri-brain).
#
#   bench/bench_prepare.sh [SCANS]          (default 32; HLIP_BINARY or HLIP_BUILD_DIR pick the binary)
#
# hlip runs as one process with one worker on one thread; its CPU time is user + sys of the process, given
# for the whole process and per scan after start-up (the run of the first study alone subtracted). Python's
# is the CPU time of its preparation loop alone (interpreter start and imports left out). The last line
# checks that both caches hold the same voxels.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
HLIP=${HLIP_BINARY:-${HLIP_BUILD_DIR:-build}/bin/hlip}
SCANS=${1:-32}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

/usr/bin/python3 bench/baseline_prepare.py --make "$WORK/data" --scans "$SCANS"
sync
# hlip twice: the first study alone (start-up: loading LibTorch, about 0.8 s of CPU here), then all of them.
head -n 1 "$WORK/data/studies.jsonl" >"$WORK/data/first.jsonl"
run_hlip() {  # MANIFEST CACHE → "wall cpu" seconds
  /usr/bin/time -f "%e %U %S" -o "$WORK/time" "$HLIP" prepare --manifest "$1" --out "$2" --preset mri-brain \
    --workers 1 --threads 1 --no-progress >/dev/null 2>&1
  awk '{ print $1, $2 + $3 }' "$WORK/time"
}
read -r wall1 cpu1 < <(run_hlip "$WORK/data/first.jsonl" "$WORK/cache-first")
read -r wall cpu < <(run_hlip "$WORK/data/studies.jsonl" "$WORK/cache")
awk -v n="$SCANS" -v w="$wall" -v c="$cpu" -v w1="$wall1" -v c1="$cpu1" 'BEGIN {
  printf "hlip   %-12s %d scans: wall %7.1f ms/scan  cpu %7.1f ms/scan  %6.2f scans/s per core (whole process)\n",
         "prepare", n, 1000 * w / n, 1000 * c / n, n / c
  m = (c - c1) / (n - 1)
  printf "hlip   %-12s %d scans: wall %7.1f ms/scan  cpu %7.1f ms/scan  %6.2f scans/s per core (after start-up)\n",
         "prepare", n - 1, 1000 * (w - w1) / (n - 1), 1000 * m, 1 / m }' | tee "$WORK/hlip.txt"
/usr/bin/python3 bench/baseline_prepare.py --run "$WORK/data" --out "$WORK/python-cache" | tee "$WORK/python.txt"
# Python's loop time leaves its start-up out, so it is compared with hlip's time after start-up (and, to
# be complete, with hlip's whole process).
cpu_of() { awk -v line="$2" 'NR == line { for (i = 1; i <= NF; ++i) if ($i == "cpu") print $(i + 1) }' "$1"; }
for line in 1 2; do
  py=$(cpu_of "$WORK/python.txt" "$line")
  name=$(awk -v line="$line" 'NR == line { print $2 }' "$WORK/python.txt")
  awk -v p="$py" -v a="$(cpu_of "$WORK/hlip.txt" 2)" -v w="$(cpu_of "$WORK/hlip.txt" 1)" -v name="$name" \
    'BEGIN { printf "speed-up per core over python %-12s %.1fx after start-up, %.1fx whole process\n", name, p / a, p / w }'
done
/usr/bin/python3 - "$WORK" <<'PY'
import sys, numpy as np
a = np.load(f"{sys.argv[1]}/cache/scans/s0/T1.npy"); b = np.load(f"{sys.argv[1]}/python-cache/s0/T1.npy")
print(f"same voxels: {a.shape == b.shape and bool((a == b).all())} (max |difference| {np.abs(a.astype(int) - b).max()})")
PY
