#!/usr/bin/env bash
# The retrieval models against their PyTorch twins (bench/retrieval_torch.py) on MovieLens-100K:
# each model trained once per seed with attnps and once with its twin, one process with 2 threads
# each, in the same run, both on the very same prepared files (the twin reads attnps's
# sequences.tsv and item_cates.tsv and ports its user split, example cutting, negatives and
# evaluation protocol). The sides run one after the other, never at the same time, on the same
# BLAS kernels: the twin gets the OPENBLAS_CORETYPE and GOMP_SPINCOUNT (every variable) that
# attnps set for itself, and each side's kernel core is printed.
#
#   bash bench/retrieval_vs_torch.sh                 (after bash launch/setup.sh build)
#   MODELS=self_attention SEEDS=5 bash bench/retrieval_vs_torch.sh
#   MODELS=comirec_sa SEEDS=1 EPOCHS=1 bash bench/retrieval_vs_torch.sh    (a quick check)
#
# Models: comirec_sa (launch/comirec_sa_ml100k.pbtxt, twin --model comirec_sa; the ComiRec protocol,
# recall/ndcg/hr @20 and @50 over the whole corpus) and self_attention
# (launch/self_attention_ml100k.pbtxt, twin --model sasrec; the SASRec protocol, hr@10 and ndcg@10
# among 100 sampled unseen items). The twin's flags are read off the attnps config: data.max_history
# (--maxlen), the item table's dim (--dim), comirec_sa.interests, self_attention blocks, heads and
# dropout, retrieval num_negatives, split_seed, valid_fraction and test_fraction, train batch_size and epochs, the learning rate;
# a config setting the twin cannot mirror stops the script before anything runs.
# Knobs: MODELS (default "comirec_sa self_attention"), SEEDS (default 3: seeds 1..SEEDS), EPOCHS
# (both sides' epochs; default the config's train.epochs), THREADS (default 2), ML100K (the raw
# files, for preparing data/ml-100k when missing), ATTNPS_BUILD_DIR (default build).
# Seed s: attnps gets train.seed=s and every table's seed moved by 1000 (s - 1) (seed 1 is the
# config as written; overrides.cc selects repeated fields by index or by name, tables[item].seed),
# the twin --seed s (torch's generator: initialisation, shuffling, negatives, dropout). The user
# split (retrieval.split_seed) stays the config's on both sides: the same test users every seed.
#
# Prints per model each side's test metrics (mean +- std over the seeds, and per seed) and median
# training samples/s, then `<model>_vs_torch=<attnps / twin median samples per second>` and a note
# with the quality comparison (acceptance: the self-attention encoder's hr@10 no lower than the
# twin's minus 0.01). Logs (and attnps's metrics JSON lines) under runs/retrieval_vs_torch/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${ATTNPS_BUILD_DIR:-$ROOT/build}"
ML100K="${ML100K:-$ROOT/../shared/data/ml-100k}"
THREADS="${THREADS:-2}"
SEEDS="${SEEDS:-3}"
MODELS="${MODELS:-comirec_sa self_attention}"
EPOCHS="${EPOCHS:-}"
LOGS=runs/retrieval_vs_torch
PY=/usr/bin/python3
cd "$ROOT"

# cfg MODE CONFIG [ARG]: reads a text-protobuf job config (tokenised here, no generated code).
#   cfg twin CONFIG [EPOCHS]  -> the twin's flags (one line); exits 1 on what the twin cannot mirror
#   cfg seeds CONFIG SEED     -> attnps's --set flags for run seed SEED, one a line
cfg() {
  "$PY" - "$@" <<'PYCFG'
import re, sys

def parse(text):
    toks = re.findall(r'"(?:[^"\\]|\\.)*"|#[^\n]*|[{}:\[\],;]|[^\s{}:\[\],;"#]+', text)
    toks = [t for t in toks if not t.startswith("#") and t not in (",", ";")]
    def msg(i):  # -> (dict field -> list of values, next index)
        m = {}
        while i < len(toks) and toks[i] != "}":
            name = toks[i]; i += 1
            if toks[i] == ":": i += 1
            if toks[i] == "{":
                v, i = msg(i + 1); i += 1
                m.setdefault(name, []).append(v)
            elif toks[i] == "[":  # a list of scalars: f: [1, 2]
                i += 1
                while toks[i] != "]":
                    m.setdefault(name, []).append(toks[i].strip('"')); i += 1
                i += 1
            else:
                m.setdefault(name, []).append(toks[i].strip('"')); i += 1
        return m, i
    return msg(0)[0]

def get(m, path, default=None):
    for f in path.split("."):
        v = (m or {}).get(f)
        if not v: return default
        m = v[-1]
    return m

mode, path = sys.argv[1], sys.argv[2]
c = parse(open(path).read())
tables = c.get("tables", [])
if mode == "seeds":
    s = int(sys.argv[3])
    print(f"--set=train.seed={s}")
    for t in tables:  # every table's seed moved by 1000 (s - 1): seed 1 is the config's own
        print(f"--set=tables[{get(t, 'name')}].seed={int(get(t, 'seed', '1')) + 1000 * (s - 1)}")
    sys.exit(0)

bad = []
def want(what, got, ok):
    if got not in ok: bad.append(f"{what}={got} (the twin has {ok[0]})")
def table(name):
    for t in tables:
        if get(t, "name") == name: return t
    sys.exit(f"{path}: no table {name!r}")
model = get(c, "model", {})
kind = next((k for k in ("comirec_sa", "self_attention") if k in model), None)
if kind is None: sys.exit(f"{path}: neither model.comirec_sa nor model.self_attention")
item = table(get(c, "features.item_table", "item"))
out = table(get(c, "retrieval.output_table", "item_out"))
dim = int(get(item, "dim", "8"))
want("the output table's dim", int(get(out, "dim", "8")), [dim])
lr = float(get(c, "dense_optimizer.learning_rate", "nan"))
want("dense_optimizer.kind", get(c, "dense_optimizer.kind", "?"), ["ADAM"])
for t in (item, out):
    n = get(t, "name")
    want(f"tables[{n}].optimizer.kind", get(t, "optimizer.kind", "?"), ["ADAM"])
    want(f"tables[{n}].optimizer.learning_rate", float(get(t, "optimizer.learning_rate", "nan")), [lr])
    want(f"tables[{n}].initializer.kind", get(t, "initializer.kind", "?"), ["TRUNCATED_NORMAL"])
    want(f"tables[{n}].initializer.stddev", float(get(t, "initializer.stddev", "nan")), [0.01])
r = lambda f, d: get(c, "retrieval." + f, d)
want("retrieval.negatives", r("negatives", "LOG_UNIFORM"), ["LOG_UNIFORM"])
want("retrieval.in_batch_negatives", r("in_batch_negatives", "false"), ["false"])
want("retrieval.output_bias", r("output_bias", "false"), ["false"])
want("retrieval.min_history", int(r("min_history", "1")), [1])
want("retrieval.eval_users", r("eval_users", "TEST"), ["TEST"])
topk = [int(x) for x in c.get("retrieval", [{}])[-1].get("topk", [])]
flags = [f"--maxlen {int(get(c, 'data.max_history', '50'))}", f"--dim {dim}",
         f"--negatives {int(r('num_negatives', '1000'))}", f"--split_seed {int(r('split_seed', '1'))}",
         f"--valid_fraction {float(r('valid_fraction', '0.1')):g}",
         f"--test_fraction {float(r('test_fraction', '0.1')):g}",
         f"--batch {int(get(c, 'train.batch_size', '128'))}",
         f"--epochs {int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3] else int(get(c, 'train.epochs', '1'))}",
         f"--lr {lr:g}"]
if kind == "comirec_sa":
    m = model["comirec_sa"][-1]
    want("retrieval.protocol", r("protocol", "COMIREC"), ["COMIREC"])
    want("retrieval.topk", topk or [20, 50], [[20, 50]])
    want("retrieval.aggregation", r("aggregation", "MERGE"), ["MERGE"])
    want("retrieval.history_fraction", float(r("history_fraction", "0.8")), [0.8])
    want("comirec_sa.attention_hidden", int(get(m, "attention_hidden", "0")), [0, 4 * dim])
    flags = ["--model comirec_sa"] + flags + [f"--interests {int(get(m, 'interests', '4'))}"]
else:
    m = model["self_attention"][-1]
    want("retrieval.protocol", r("protocol", "COMIREC"), ["SASREC"])
    want("retrieval.topk", topk or [10], [[10]])
    want("retrieval.sampled_candidates", int(r("sampled_candidates", "100")), [100])
    want("self_attention.ffn_hidden", int(get(m, "ffn_hidden", "0")), [0, dim])
    want("self_attention.pre_norm", get(m, "pre_norm", "true"), ["true"])
    flags = ["--model sasrec"] + flags + [
        f"--blocks {int(get(m, 'blocks', '2'))}", f"--heads {int(get(m, 'heads', '1'))}",
        f"--dropout {float(get(m, 'dropout', '0.2')):g}"]
if bad: sys.exit(f"{path}: the twin cannot mirror " + "; ".join(bad))
print(" ".join(flags))
PYCFG
}

if ! "$PY" -c "import torch, numpy" 2>/dev/null; then
  echo "== installing python3-torch python3-numpy (the twins' dependencies)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3-torch python3-numpy >/dev/null
fi
if [ ! -f data/ml-100k/sequences.tsv ] || [ ! -f data/ml-100k/item_cates.tsv ]; then
  [ -f "$ML100K/ml-100k.inter" ] || { echo "no MovieLens-100K in $ML100K (set ML100K=...)" >&2; exit 1; }
  echo "== preparing data/ml-100k" >&2
  "$BUILD/attnps" prepare --format=movielens --input="$ML100K/ml-100k.inter" \
    --items="$ML100K/ml-100k.item" --out=data/ml-100k >/dev/null
fi

declare -A TWIN
for model in $MODELS; do  # every model's twin flags first: a config the twin cannot mirror stops here
  cfgfile="launch/${model}_ml100k.pbtxt"
  [ -f "$cfgfile" ] || { echo "unknown model $model (no $cfgfile)" >&2; exit 1; }
  TWIN[$model]="$(cfg twin "$cfgfile" "$EPOCHS")"
done
mkdir -p "$LOGS"

for model in $MODELS; do
  cfgfile="launch/${model}_ml100k.pbtxt"
  rm -f "$LOGS/${model}"_*
  sets=(--set=train.threads="$THREADS" --set=train.progress_seconds=1000 --set=checkpoint.dir=)
  [ -z "$EPOCHS" ] || sets+=(--set=train.epochs="$EPOCHS")
  for seed in $(seq "$SEEDS"); do
    echo "== $model seed $seed: attnps, then its twin" >&2
    mapfile -t seeds < <(cfg seeds "$cfgfile" "$seed")
    log="$LOGS/${model}_attnps_s$seed.log"
    echo "== attnps flags: ${sets[*]} ${seeds[*]}" >&2
    "$BUILD/attnps" train --config="$cfgfile" "${sets[@]}" "${seeds[@]}" \
      --metrics_out="$LOGS/${model}_s$seed.jsonl" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    grep -o 'BLAS kernels [^;]*' "$log" | head -1 | sed 's/^/== attnps: /' >&2 || true
    env=(OMP_NUM_THREADS="$THREADS")  # the twin gets the BLAS core and the variables attnps set
    while read -r kv; do env+=("$kv"); done < <(grep -o '[A-Z_][A-Z0-9_]*=[^ ;]* set by attnps' "$log" |
      cut -d' ' -f1 | sort -u)
    echo "== twin env: ${env[*]}; torch $(env "${env[@]}" "$PY" bench/blas_core.py)" >&2
    read -r -a args <<<"${TWIN[$model]}"
    echo "== twin flags: ${args[*]} --seed $seed --threads $THREADS" >&2
    log="$LOGS/${model}_torch_s$seed.log"
    env "${env[@]}" "$PY" bench/retrieval_torch.py --data data/ml-100k "${args[@]}" --seed "$seed" \
      --threads "$THREADS" >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
  done
done

"$PY" - "$LOGS" $MODELS <<'PY'
import glob, re, statistics, sys
logs, models = sys.argv[1], sys.argv[2:]
KV = re.compile(r"([a-z_]+(?:@\d+)?)=([0-9.eE+-]+|nan|inf)")

def attnps(path):
    text = open(path).read()
    evals = re.findall(r"^\[attnps\] epoch \d+ step \d+: \w+ (.*) \((\d+) samples", text, re.M)
    if not evals: sys.exit(f"{path}: no evaluation line")
    rate = re.findall(r"^\[attnps\] trained (\d+) samples .*train_samples_per_s=([0-9.]+)", text, re.M)
    if not rate: sys.exit(f"{path}: no `trained N samples` line")
    metrics = {k: float(v) for k, v in KV.findall(evals[-1][0]) if "@" in k}
    return metrics, float(rate[-1][1]), int(rate[-1][0]), int(evals[-1][1])

def torch(path):
    text = open(path).read()
    line = [l for l in text.splitlines() if "eval_users=" in l]
    rate = re.findall(r"^samples_per_s=([0-9.]+)", text, re.M)
    if not line or not rate: sys.exit(f"{path}: no metrics or samples_per_s line")
    kv = dict(KV.findall(line[-1]))
    n = int(re.findall(r"^train_samples=(\d+)", text, re.M)[0])
    epochs = len(re.findall(r"^epoch=\d+ ", text, re.M))
    return ({k: float(v) for k, v in kv.items() if "@" in k}, float(rate[-1]), n * epochs,
            int(kv["eval_users"]))

def seeds(p):
    return int(re.search(r"_s(\d+)\.log$", p).group(1))

for m in models:
    got = {}
    for who, read in (("attnps", attnps), ("torch", torch)):
        paths = sorted(glob.glob(f"{logs}/{m}_{who}_s*.log"), key=seeds)
        runs = [read(p) for p in paths]
        got[who] = runs
    keys = list(got["torch"][0][0])  # the twin's metrics, in its order; attnps prints the same names
    for who, runs in got.items():
        sps = statistics.median(r[1] for r in runs)
        parts = []
        for k in keys:
            v = [r[0].get(k, float("nan")) for r in runs]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            parts.append(f"{k}={statistics.mean(v):.4f} +- {sd:.4f}")
        print(f"{m}: {who:<6} {' '.join(parts)} median_samples_per_s={sps:.0f} "
              f"(train samples {runs[0][2]}, eval users {runs[0][3]})")
        for i, r in enumerate(runs):
            print(f"{m}: {who:<6}   seed {i + 1}: " + " ".join(f"{k}={r[0].get(k, float('nan')):.4f}"
                                                         for k in keys) + f" samples_per_s={r[1]:.0f}")
    a_sps = statistics.median(r[1] for r in got["attnps"])
    t_sps = statistics.median(r[1] for r in got["torch"])
    print(f"{m}_vs_torch={a_sps / t_sps:.2f}")
    mean = lambda who, k: statistics.mean(r[0].get(k, float("nan")) for r in got[who])
    delta = " ".join(f"{k} {mean('attnps', k) - mean('torch', k):+.4f}" for k in keys)
    key = "hr@10" if "hr@10" in keys else "recall@50"
    a, t = mean("attnps", key), mean("torch", key)
    verdict = "ok" if a >= t - 0.01 else "LOWER"
    bar = ("acceptance: attnps hr@10 >= twin hr@10 - 0.01" if key == "hr@10" else
           "the same 0.01 bar, for information")
    print(f"note: {m} quality, attnps - twin (means): {delta}; {key} {a:.4f} vs {t:.4f} - 0.01: "
          f"{verdict} ({bar})")
    if got["attnps"][0][2] != got["torch"][0][2] or got["attnps"][0][3] != got["torch"][0][3]:
        print(f"note: {m} the sides differ in train samples or eval users (see above)")
PY
