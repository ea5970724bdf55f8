#!/usr/bin/env bash
# DIN: attnps against the PyTorch reference (../shared/peers/din_torch.py), one process with 2
# threads each, one epoch, in the same run, on two data sets:
#   - MovieLens-100K (the same data recipe on both sides; long histories, hundreds per user);
#   - a short-history set from the synthetic generator (geometric user lengths: median history 5,
#     max 50, like Amazon's or Taobao's), both sides training and testing on our very files
#     (`din_torch.py --samples`).
# Both sides run the right BLAS kernels for this CPU: attnps sets OPENBLAS_CORETYPE itself when
# the library detected a lower core (ops/cpu_kernels.h), and the peer, which calls the system
# BLAS through PyTorch, gets the same setting, and the same OpenMP spin count (GOMP_SPINCOUNT).
# Each side's kernel core is printed.
#
#   bash bench/din_vs_torch.sh        (after bash launch/setup.sh build)
#
# Prints each side's test AUC and training throughput per data set, then `din_vs_torch=<attnps /
# torch samples per second>` (MovieLens-100K) and `din_vs_torch_short=<...>` last. Needs
# Debian's python3-torch and python3-sklearn (installed here when missing) and the data in $ML100K
# (default ../shared/data/ml-100k).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTNPS_BUILD_DIR:-$ROOT/build}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
PEER="${PEER:-$ROOT/../shared/peers/din_torch.py}"
THREADS="${THREADS:-2}"
cd "$ROOT"
mkdir -p runs

if ! /usr/bin/python3 -c "import torch, sklearn" 2>/dev/null; then
  echo "== installing python3-torch python3-sklearn (the reference's dependencies)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-torch python3-sklearn >/dev/null
fi
[ -f "$ML100K/ml-100k.inter" ] || { echo "no MovieLens-100K in $ML100K (set ML100K=...)" >&2; exit 1; }

"$BUILD/attnps" prepare --format=movielens --input="$ML100K/ml-100k.inter" \
  --items="$ML100K/ml-100k.item" --out=data/ml-100k >/dev/null
"$BUILD/attnps" prepare --format=synthetic --users=20000 --items=20000 --clusters=200 \
  --events_per_user=9 --lengths=geometric --out=data/short >/dev/null

train_ours() {  # train_ours <log> [--set ...]
  local log=$1
  shift
  "$BUILD/attnps" train --config=launch/din_ml100k.pbtxt --set=train.threads="$THREADS" \
    --set=train.progress_seconds=1000 --set=checkpoint.dir= --metrics_out=runs/din_vs_torch.jsonl \
    "$@" | tee "$log" >&2
}
echo "== attnps: launch/din_ml100k.pbtxt, 1 process, $THREADS threads" >&2
train_ours runs/din_vs_torch_ours.log
# The core attnps chose (when it had to set one, the peer gets the same).
core=$(grep -o 'OPENBLAS_CORETYPE=[A-Za-z0-9]* set by attnps' runs/din_vs_torch_ours.log |
  cut -d= -f2 | cut -d' ' -f1 || true)
PEER_ENV=(env OMP_NUM_THREADS="$THREADS")
[ -z "$core" ] || PEER_ENV+=(OPENBLAS_CORETYPE="$core")
# And the OpenMP spin count attnps runs with (PyTorch's CPU ops use the same libgomp).
spin=$(grep -o 'GOMP_SPINCOUNT=[0-9]* set by attnps' runs/din_vs_torch_ours.log | cut -d= -f2 |
  cut -d' ' -f1 || true)
[ -z "$spin" ] || PEER_ENV+=(GOMP_SPINCOUNT="$spin")
our_core=$(grep -o 'BLAS kernels [A-Za-z0-9]*' runs/din_vs_torch_ours.log | head -1 | cut -d' ' -f3)
peer_core=$("${PEER_ENV[@]}" /usr/bin/python3 bench/blas_core.py)
echo "== BLAS: attnps core=$our_core; torch $peer_core; peer env: ${PEER_ENV[*]:1}" >&2

echo "== PyTorch reference: $PEER, $THREADS threads" >&2
"${PEER_ENV[@]}" /usr/bin/python3 "$PEER" --inter "$ML100K/ml-100k.inter" \
  --items "$ML100K/ml-100k.item" --threads "$THREADS" --epochs 1 | tee runs/din_vs_torch_theirs.log >&2
echo "== short histories: attnps" >&2
train_ours runs/din_vs_torch_short_ours.log --set=data.train_path=data/short/train.tsv \
  --set=data.test_path=data/short/test.tsv --set=data.item_cates_path=
echo "== short histories: PyTorch reference (--samples data/short)" >&2
"${PEER_ENV[@]}" /usr/bin/python3 "$PEER" --samples data/short --threads "$THREADS" --epochs 1 |
  tee runs/din_vs_torch_short_theirs.log >&2

python3 - "$our_core" "$peer_core" <<'PY'
import re, sys
def last(path, key):
    found = re.findall(key + r"=([0-9.]+)", open(path).read())
    return float(found[-1])
print(f"blas: attnps core={sys.argv[1]}; {sys.argv[2]}")
for name, suffix in (("ml100k", ""), ("short", "_short")):
    ours = last(f"runs/din_vs_torch{suffix}_ours.log", "train_samples_per_s")
    our_auc = last(f"runs/din_vs_torch{suffix}_ours.log", " auc")
    theirs = last(f"runs/din_vs_torch{suffix}_theirs.log", "train_samples_per_s")
    their_auc = last(f"runs/din_vs_torch{suffix}_theirs.log", "test_auc")
    print(f"{name}: attnps test_auc={our_auc:.4f} train_samples_per_s={ours:.0f}; "
          f"torch test_auc={their_auc:.4f} train_samples_per_s={theirs:.0f}; "
          f"auc_minus_torch={our_auc - their_auc:+.4f}")
    print(f"din_vs_torch{suffix}={ours / theirs:.2f}")
PY
