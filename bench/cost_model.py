#!/usr/bin/env python3
"""attnps scaling cost model: predicts training samples/s for H hosts with S servers and W workers
each, from measured quantities, and checks the prediction against bench/scaling.sh's CSV.

  python3 bench/cost_model.py runs/scaling/scaling.csv [--markdown]

A training step of a worker (batch B) costs

  T = k * (B * c  +  g * Bh)  +  Bl / (e * R)  +  n * rtt

  c    per-sample CPU time of a worker step, from the 1-host run (its whole step: data, compute,
       the server's pull and push work on the same cores);
  k    core contention: max(1, (W_host + s * S_host) / cores_per_host), with s the CPU share of a
       server next to a worker (the emulated hosts share this machine's cores: every process of
       every host counts against the same cores);
  Bh   bytes this host's processes send and receive per step (PS requests and replies, the dense
       allreduce), g the CPU time per byte (TCP, veth and MPI copies run on the same cores);
  Bl   bytes per step on the host's busier link direction: the workers' requests to servers on
       other hosts, the servers' replies to workers on other hosts (from the per-peer bytes the
       trainer counts), plus the allreduce's 2 (W-1)/W * A per worker (A = dense gradient bytes);
  R    the link's TCP rate per direction with both directions busy (bench/link_probe.py), e the
       fraction of it a step's bursts get;
  n    round trips per step: the pull, and 2 allreduces (flags, dense) of 2 log2(W) rounds each;
  rtt  the measured 1-byte TCP round trip.

c, bytes, A, R and rtt are measured; s, g and e are fitted, and every configuration's prediction
is made with parameters fitted on the OTHER configurations (leave-one-out), so each one is a
prediction, not a fit. samples/s = W * B / T. Projection: real hosts with their own cores (k = 1,
g's CPU cost on the worker's cores kept), 25 and 100 Gbit/s links (e = 0.9 of the line rate),
1 to 64 hosts, 1 server + 1 worker per host, weak (B = 256 per worker) and strong (global batch
fixed at 256 x 8) scaling.
"""
import csv
import math
import sys

PHASES = ["data", "pull_wait", "gather", "compute", "scatter", "push", "allreduce", "dense_update"]


def load(path):
    rows = list(csv.DictReader(open(path)))
    for r in rows:
        for k, v in r.items():
            try:
                r[k] = float(v)
            except ValueError:
                pass
    return rows


def traffic(r):
    """(bytes on the busier link direction, bytes through the host's stack) per step, per host."""
    h, S, W = r["hosts"], r["servers"], r["workers"]
    s_h, w_h = S / h, W / h
    q_out, q_in = r["peer_sent_bytes_mean"], r["peer_received_bytes_mean"]  # worker <-> 1 server
    A = r["allreduce_bytes"]
    remote_servers, remote_workers = S - s_h, W - w_h
    out = w_h * remote_servers * q_out + s_h * remote_workers * q_in
    inn = w_h * remote_servers * q_in + s_h * remote_workers * q_out
    ar = w_h * 2 * (W - 1) / W * A if h > 1 else 0.0
    link = max(out, inn) + ar
    stack = out + inn + 2 * ar
    return link, stack


def contention(r, s):
    cores = r["cores"]  # the emulated hosts share the machine's cores
    return max(1.0, (r["workers"] + s * r["servers"]) / cores)


def step_seconds(r, c, p):
    s, g, e = p
    B, W = r["batch"], r["workers"]
    k = contention(r, s)
    link, stack = traffic(r)
    rate = r["link_mbps"] * 1e6 / 8 if r["hosts"] > 1 else float("inf")
    rounds = 1 + 2 * 2 * math.log2(W) if W > 1 else 1
    rtt = r["link_rtt_us"] * 1e-6
    return k * (B * c + g * stack) + link / (e * rate) + rounds * rtt


def predict(r, c, p):
    return r["workers"] * r["batch"] / step_seconds(r, c, p)


def fit(rows, c):
    """Least squares on log(predicted / measured) by a coarse-to-fine grid over (s, g, e)."""
    def loss(p):
        return sum(math.log(predict(r, c, p) / r["samples_per_s"]) ** 2 for r in rows)

    lo, hi = [0.0, 0.0, 0.1], [1.5, 40e-9, 1.2]
    best = None
    for _ in range(6):
        n = 12
        grid = [[lo[i] + (hi[i] - lo[i]) * j / n for j in range(n + 1)] for i in range(3)]
        for s in grid[0]:
            for g in grid[1]:
                for e in grid[2]:
                    if e <= 0:
                        continue
                    v = loss((s, g, e))
                    if best is None or v < best[0]:
                        best = (v, (s, g, e))
        p = best[1]
        lo = [max(0.0, p[i] - (hi[i] - lo[i]) / n) for i in range(3)]
        hi = [p[i] + (hi[i] - lo[i]) / n * 2 for i in range(3)]
        lo[2] = max(lo[2], 0.05)
    return best[1]


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


def project(rows, c, p, base):
    """Predicted samples/s for real hosts (own cores) at 25 and 100 Gbit/s."""
    s, g, _ = p
    per_sample_out = base["peer_sent_bytes_mean"] / base["batch"] / base["unique_key_ratio"]
    per_sample_in = base["peer_received_bytes_mean"] / base["batch"] / base["unique_key_ratio"]
    out = []
    for gbit in (25, 100):
        for mode in ("weak", "strong"):
            for h in (1, 2, 4, 8, 16, 32, 64):
                B = 256 if mode == "weak" else 256 * 8 / h
                u = unique_ratio(rows, B)
                r = dict(hosts=h, servers=h, workers=h, batch=B, cores=1e9,
                         peer_sent_bytes_mean=per_sample_out * u * B / h,
                         peer_received_bytes_mean=per_sample_in * u * B / h,
                         allreduce_bytes=base["allreduce_bytes"], link_mbps=gbit * 1000,
                         link_rtt_us=base_rtt(rows))
                t_cpu = B * c + g * traffic(r)[1]
                t = step_seconds(r, c, (s, g, 0.9))
                out.append((gbit, mode, h, B, h * B / t, t_cpu / t))
    return out


def base_rtt(rows):
    rtts = [r["link_rtt_us"] for r in rows if r["hosts"] > 1]
    return sorted(rtts)[len(rtts) // 2] if rtts else 50.0


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    rows = load(sys.argv[1])
    md = "--markdown" in sys.argv
    bases = [r for r in rows if r["hosts"] == 1]
    if not bases:
        sys.exit("cost_model.py: the CSV has no 1-host run (bench/scaling.sh writes one)")
    base = max(bases, key=lambda r: r["samples_per_s"])
    c = base["step_ms"] * 1e-3 / base["batch"]  # the 1-host step, per sample
    multi = [r for r in rows if r["hosts"] > 1]
    p_all = fit(multi, c)
    print("measured: c = %.2f us per sample (1 host, B=%d), rtt %s us, link %s Mbit/s" % (
        1e6 * c, base["batch"], "/".join(sorted({"%.0f" % r["link_rtt_us"] for r in multi})),
        "/".join(sorted({"%.0f" % r["link_mbps"] for r in multi}))))
    print("fitted on all %d multi-host runs: server CPU share s = %.2f, CPU per byte g = %.1f ns, "
          "link efficiency e = %.2f" % (len(multi), p_all[0], 1e9 * p_all[1], p_all[2]))
    sep = " | " if md else "  "
    head = ["mode", "hosts", "S", "W", "B", "link", "oversub", "measured", "predicted", "error"]
    if md:
        print("\n| " + " | ".join(head) + " |\n|" + "---|" * len(head))
    else:
        print("\n" + sep.join("%9s" % h for h in head))
    worst = 0.0
    for i, r in enumerate(rows):
        if r["hosts"] == 1:
            pred = predict(r, c, p_all)  # c comes from this run: no prediction to make
        else:
            others = [o for j, o in enumerate(multi) if o is not r]
            pred = predict(r, c, fit(others, c))
        err = pred / r["samples_per_s"] - 1
        if r["hosts"] > 1:
            worst = max(worst, abs(err))
        cells = [r["mode"], "%d" % r["hosts"], "%d" % r["servers"], "%d" % r["workers"],
                 "%d" % r["batch"], str(r["link_rate"]), "yes" if r["oversubscribed"] else "no",
                 "%.0f" % r["samples_per_s"], "%.0f" % pred, "%+.1f%%" % (100 * err)]
        print(("| " + " | ".join(cells) + " |") if md else sep.join("%9s" % x for x in cells))
    print("\nleave-one-out prediction error: worst %.1f%% over %d multi-host runs (target 25%%)" % (
        100 * worst, len(multi)))
    print("\nprojection (real hosts, 1 server + 1 worker each, own cores):")
    proj = project(rows, c, p_all, base)
    if md:
        print("\n| link | mode | hosts | batch/worker | samples/s | efficiency | CPU share of step |")
        print("|---|---|---|---|---|---|---|")
    one = {(g, m): v for g, m, h, B, v, _ in proj if h == 1}
    for gbit, mode, h, B, v, cpu in proj:
        eff = v / (one[(gbit, mode)] * h) if mode == "weak" else v / (one[(gbit, mode)])
        # strong: efficiency = speed-up over 1 host / hosts
        if mode == "strong":
            eff = v / one[(gbit, mode)] / h
        cells = ["%d Gbit/s" % gbit, mode, "%d" % h, "%.0f" % B, "%.0f" % v, "%.2f" % eff,
                 "%.2f" % cpu]
        print(("| " + " | ".join(cells) + " |") if md else sep.join("%12s" % x for x in cells))
    print("cost_model_worst_error=%.3f" % worst)
    sys.exit(0 if worst <= 0.25 else 1)


if __name__ == "__main__":
    main()
