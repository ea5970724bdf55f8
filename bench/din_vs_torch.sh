#!/usr/bin/env bash
# DIN on MovieLens-100K: attnps against the PyTorch reference (../shared/peers/din_torch.py), one
# process with 2 threads each, same data recipe, one epoch, in the same run.
#
#   bash bench/din_vs_torch.sh        (after bash launch/setup.sh build)
#
# Prints each side's test AUC and training throughput, then `din_vs_torch=<attnps / torch
# samples per second>` last. Needs Debian's python3-torch and python3-sklearn (installed here when
# missing) and the data in $ML100K (default ../shared/data/ml-100k).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTNPS_BUILD_DIR:-$ROOT/build}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
PEER="${PEER:-$ROOT/../shared/peers/din_torch.py}"
THREADS="${THREADS:-2}"
cd "$ROOT"

if ! /usr/bin/python3 -c "import torch, sklearn" 2>/dev/null; then
  echo "== installing python3-torch python3-sklearn (the reference's dependencies)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-torch python3-sklearn >/dev/null
fi
[ -f "$ML100K/ml-100k.inter" ] || { echo "no MovieLens-100K in $ML100K (set ML100K=...)" >&2; exit 1; }

"$BUILD/attnps" prepare --format=movielens --input="$ML100K/ml-100k.inter" \
  --items="$ML100K/ml-100k.item" --out=data/ml-100k >/dev/null
echo "== attnps: launch/din_ml100k.pbtxt, 1 process, $THREADS threads"
ours=$("$BUILD/attnps" train --config=launch/din_ml100k.pbtxt --set=train.threads="$THREADS" \
  --set=train.progress_seconds=1000 --metrics_out=runs/din_vs_torch.jsonl | tee /dev/stderr)
echo "== PyTorch reference: $PEER, $THREADS threads"
theirs=$(OMP_NUM_THREADS="$THREADS" /usr/bin/python3 "$PEER" --inter "$ML100K/ml-100k.inter" \
  --items "$ML100K/ml-100k.item" --threads "$THREADS" --epochs 1 | tee /dev/stderr)

our_rate=$(grep -o 'train_samples_per_s=[0-9.]*' <<<"$ours" | tail -1 | cut -d= -f2)
our_auc=$(grep -o ' auc=[0-9.]*' <<<"$ours" | tail -1 | cut -d= -f2)
their_rate=$(grep -o 'train_samples_per_s=[0-9.]*' <<<"$theirs" | tail -1 | cut -d= -f2)
their_auc=$(grep -o 'test_auc=[0-9.]*' <<<"$theirs" | tail -1 | cut -d= -f2)
python3 - "$our_rate" "$our_auc" "$their_rate" "$their_auc" <<'PY'
import sys
ours, our_auc, theirs, their_auc = map(float, sys.argv[1:])
print(f"attnps: test_auc={our_auc:.4f} train_samples_per_s={ours:.0f}")
print(f"torch:  test_auc={their_auc:.4f} train_samples_per_s={theirs:.0f}")
print(f"auc_minus_torch={our_auc - their_auc:+.4f}")
print(f"din_vs_torch={ours / theirs:.2f}")
PY
