#!/usr/bin/env python3
"""attnps scaling cost model: samples/s of H hosts with S servers and W workers from measured
quantities, checked against bench/scaling.sh's CSV, and projected to real clusters.

  python3 bench/cost_model.py runs/scaling/scaling.csv [--fit=OTHER.csv] [--markdown]

One training step of a worker (batch B per worker) costs

  T = max(1, W/C) B c  +  a Bps / R  +  b Bar / R  +  d W max(0, P - C) ms  +  (1 + log2 W + W - 1) rtt

  c    per-sample time of a step on one host (1 server + 1 worker: data, model, the server's
       pull and push work), from the CSV's 1-host row;
  C    cores the processes share (the emulated hosts share this machine's cores: W workers take
       turns on them; a real host has its own);
  Bps  parameter-server bytes per step on the busiest host link direction: the host's workers'
       requests to servers on other hosts plus its servers' replies to workers on other hosts,
       from the per-server bytes the trainer counts (s<i>_sent_bytes, s<i>_received_bytes);
  Bar  dense allreduce bytes on that link: Open MPI's ring, 2 (W-1)/W A per worker whose ring
       neighbour is on another host (A = allreduce_bytes, the dense gradients and step flags);
  R    the link's TCP rate per direction with both directions busy (bench/link_probe.py);
  P    processes on the machine: d is the time a worker loses per process beyond the cores (the
       allreduce busy-waits; a waiting process holds a core another one needs);
  rtt  the measured 1-byte TCP round trip: a pull, the flags' recursive doubling, the ring's
       2 (W-1) half-trips.

c, C, Bps, Bar, R, P and rtt are measured; a, b, d are fitted by least squares on the relative
error. Each configuration's prediction uses a, b, d fitted on the OTHER configurations
(leave-one-out), or on another run's CSV (--fit), so it is a prediction, not a fit.
samples/s = W B / T. The projection: real hosts with their own cores (no contention term),
1 server + 1 worker per host, links of 25 and 100 Gbit/s at 90% TCP goodput, the measured rtt.
"""
import csv
import math
import sys

NAMES = ["a (PS bytes)", "b (allreduce bytes)", "d (ms per excess process)"]


def load(path):
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v)
            except ValueError:
                pass
    return rows


def host_of(rank, hosts):
    return rank % hosts  # mpirun --map-by node: round-robin over the hosts


def ps_link_bytes(r):
    """PS bytes per step on the busier direction of an average host's link."""
    h, S, W = r["hosts"], r["servers"], r["workers"]
    if h <= 1:
        return 0.0
    s_h, w_h = S / h, W / h
    q_out, q_in = r["peer_sent_bytes_mean"], r["peer_received_bytes_mean"]  # worker <-> 1 server
    out = w_h * (S - s_h) * q_out + s_h * (W - w_h) * q_in
    inn = w_h * (S - s_h) * q_in + s_h * (W - w_h) * q_out
    return max(out, inn)


def ring_link_bytes(r):
    """Ring allreduce bytes per step on the busiest host link (each worker sends 2 (W-1)/W A)."""
    H, S, W, A = int(r["hosts"]), int(r["servers"]), int(r["workers"]), r["allreduce_bytes"]
    if H <= 1 or W <= 1:
        return 0.0
    per_host = [0.0] * H
    for i in range(W):
        h = host_of(S + i, H)
        if host_of(S + (i + 1) % W, H) != h:
            per_host[h] += 2 * (W - 1) / W * A
    return max(per_host)


def features(r, c):
    """(fixed seconds, [feature seconds for a, b, d])."""
    W, C = r["workers"], r["cores"]
    R = r["link_mbps"] * 1e6 / 8 if r["hosts"] > 1 else float("inf")
    procs = r["workers"] + r["servers"]
    rounds = 1 + math.log2(W) + (W - 1) if W > 1 else 1
    fixed = max(1.0, W / C) * r["batch"] * c + (rounds * r["link_rtt_us"] * 1e-6 if r["hosts"] > 1 else 0)
    return fixed, [ps_link_bytes(r) / R, ring_link_bytes(r) / R, W * max(0, procs - C) * 1e-3]


def step_seconds(r, c, coef):
    fixed, f = features(r, c)
    return fixed + sum(k * x for k, x in zip(coef, f))


def predict(r, c, coef):
    return r["workers"] * r["batch"] / step_seconds(r, c, coef)


def solve(A, y):
    """Least squares by the normal equations (a few unknowns), Gaussian elimination."""
    n = len(A[0])
    M = [[sum(A[k][i] * A[k][j] for k in range(len(A))) for j in range(n)] for i in range(n)]
    v = [sum(A[k][i] * y[k] for k in range(len(A))) for i in range(n)]
    for i in range(n):
        p = max(range(i, n), key=lambda k: abs(M[k][i]))
        M[i], M[p], v[i], v[p] = M[p], M[i], v[p], v[i]
        if abs(M[i][i]) < 1e-30:
            return None
        for k in range(i + 1, n):
            f = M[k][i] / M[i][i]
            M[k] = [a - f * b for a, b in zip(M[k], M[i])]
            v[k] -= f * v[i]
    x = [0.0] * n
    for i in reversed(range(n)):
        x[i] = (v[i] - sum(M[i][j] * x[j] for j in range(i + 1, n))) / M[i][i]
    return x


def fit(rows, c):
    """Non-negative (a, b, d) minimizing the relative squared error: the best subset solution."""
    best = None
    for mask in range(1, 8):
        cols = [i for i in range(3) if mask >> i & 1]
        A, y = [], []
        for r in rows:
            fixed, f = features(r, c)
            t = r["workers"] * r["batch"] / r["samples_per_s"]
            A.append([f[i] / t for i in cols])
            y.append((t - fixed) / t)
        x = solve(A, y)
        if x is None or min(x) < 0:
            continue
        coef = [0.0] * 3
        for i, v in zip(cols, x):
            coef[i] = v
        err = sum(math.log(predict(r, c, coef) / r["samples_per_s"]) ** 2 for r in rows)
        if best is None or err < best[0]:
            best = (err, coef)
    return best[1]


def per_sample_c(rows):
    bases = [r for r in rows if r["hosts"] == 1]
    if not bases:
        sys.exit("cost_model.py: the CSV has no 1-host run (bench/scaling.sh writes one)")
    base = max(bases, key=lambda r: r["samples_per_s"])
    return base, base["step_ms"] * 1e-3 / base["batch"]


def unique_ratio(rows, batch):
    """The unique-key ratio at a per-worker batch, interpolated in log(batch) between measured."""
    pts = sorted({(r["batch"], r["unique_key_ratio"]) for r in rows})
    if batch <= pts[0][0]:
        return min(1.0, pts[0][1] * (pts[0][0] / batch) ** 0.25)
    for (b0, u0), (b1, u1) in zip(pts, pts[1:]):
        if b0 <= batch <= b1:
            t = math.log(batch / b0) / math.log(b1 / b0) if b1 > b0 else 0
            return u0 + t * (u1 - u0)
    return pts[-1][1]


def project(rows, c, coef, base):
    """Real hosts (own cores), 1 server + 1 worker each, at 25 and 100 Gbit/s."""
    u0 = base["unique_key_ratio"]
    out_per_key_sample = base["peer_sent_bytes_mean"] / base["batch"] / u0
    in_per_key_sample = base["peer_received_bytes_mean"] / base["batch"] / u0
    rtts = sorted(r["link_rtt_us"] for r in rows if r["hosts"] > 1) or [30.0]
    result = []
    for gbit in (25, 100):
        for mode in ("weak", "strong"):
            for h in (1, 2, 4, 8, 16, 32, 64):
                B = 256 if mode == "weak" else 256 * 8 / h
                u = unique_ratio(rows, B)
                r = dict(hosts=h, servers=h, workers=h, batch=B, cores=2 * h,
                         peer_sent_bytes_mean=out_per_key_sample * u * B / h,
                         peer_received_bytes_mean=in_per_key_sample * u * B / h,
                         allreduce_bytes=base["allreduce_bytes"], link_mbps=0.9 * gbit * 1000,
                         link_rtt_us=rtts[len(rtts) // 2])
                fixed, f = features(r, c)
                compute = B * c  # a worker's step on its own host's cores
                t = fixed + coef[0] * f[0] + coef[1] * f[1]
                result.append(dict(gbit=gbit, mode=mode, hosts=h, batch=B, sps=h * B / t,
                                   compute=compute / t,
                                   allreduce=(coef[1] * f[1] + fixed - compute) / t,
                                   ps=coef[0] * f[0] / t))
    return result


def table(md, head, rows):
    if md:
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        w = [max(len(x) for x in col) for col in zip(head, *rows)]
        for r in [head] + rows:
            print("  ".join(x.rjust(n) for x, n in zip(r, w)))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if not args:
        print(__doc__)
        sys.exit(2)
    md = "--markdown" in sys.argv
    fit_path = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--fit=")), None)
    rows = load(args[0])
    base, c = per_sample_c(rows)
    multi = [r for r in rows if r["hosts"] > 1]
    fit_rows = [r for r in load(fit_path) if r["hosts"] > 1] if fit_path else multi
    coef = fit(fit_rows, c)
    print("measured: c = %.2f us per sample (1 host, B=%d), rtt %s us, link %s Mbit/s" % (
        1e6 * c, base["batch"], "/".join(sorted({"%.0f" % r["link_rtt_us"] for r in multi})),
        "/".join(sorted({"%.0f" % r["link_mbps"] for r in multi}))))
    print("fitted on %s (%d runs): %s" % (fit_path or "all multi-host runs", len(fit_rows), ", ".join(
        "%s = %.3g" % (n, v) for n, v in zip(NAMES, coef))))
    out, worst = [], 0.0
    for r in multi:
        k = coef if fit_path else fit([o for o in multi if o is not r], c)
        pred = predict(r, c, k)
        err = pred / r["samples_per_s"] - 1
        worst = max(worst, abs(err))
        fixed, f = features(r, c)
        t = r["workers"] * r["batch"] / r["samples_per_s"]
        out.append([r["mode"], "%d" % r["hosts"], "%d+%d" % (r["servers"] / r["hosts"],
                    r["workers"] / r["hosts"]), "%d" % r["batch"], str(r["link_rate"]),
                    "%d/%d" % (r["servers"] + r["workers"], r["cores"]),
                    "%.0f" % r["samples_per_s"], "%.0f" % pred, "%+.1f%%" % (100 * err),
                    "%.0f/%.0f/%.0f" % (100 * k[0] * f[0] / t, 100 * k[1] * f[1] / t,
                                        100 * k[2] * f[2] / t)])
    print()
    table(md, ["mode", "hosts", "S+W per host", "B", "link", "procs/cores", "measured",
               "predicted", "error", "PS/allreduce/contention % of T"], out)
    how = "with parameters from " + fit_path if fit_path else "leave-one-out"
    print("\nprediction error (%s): worst %.1f%% over %d multi-host runs (target 25%%)" % (
        how, 100 * worst, len(multi)))
    print("\nprojection: real hosts (own cores), 1 server + 1 worker per host, B=256 per worker "
          "(weak) or 2048 in all (strong):")
    proj = project(rows, c, coef, base)
    one = {(p["gbit"], p["mode"]): p["sps"] for p in proj if p["hosts"] == 1}
    prow = []
    for p in proj:
        eff = p["sps"] / (one[(p["gbit"], p["mode"])] * p["hosts"])
        prow.append(["%d Gbit/s" % p["gbit"], p["mode"], "%d" % p["hosts"], "%.0f" % p["batch"],
                     "%.0f" % p["sps"], "%.2f" % eff, "%.0f%%" % (100 * p["compute"]),
                     "%.0f%%" % (100 * p["ps"]), "%.0f%%" % (100 * p["allreduce"])])
    table(md, ["link", "mode", "hosts", "batch/worker", "samples/s", "efficiency", "compute",
               "PS", "allreduce"], prow)
    print("cost_model_worst_error=%.3f" % worst)
    sys.exit(0 if worst <= 0.25 else 1)


if __name__ == "__main__":
    main()
