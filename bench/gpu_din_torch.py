#!/usr/bin/env python3
"""The PyTorch twin of bench/gpu_bench's DIN step: the same model, shapes, init and optimizer.

DIN activation unit (Linear(4D, H1) over [q, k, q-k, q*k], sigmoid, Linear(H1, H2), sigmoid,
Linear(H2, 1)), raw scores masked at padding, pooled = sum_t w_t k_t; head MLP on [q, pooled]
(2D -> 200 -> 80 -> 1, ReLU); BCE with logits; Adam (lr 1e-3). Written as a competent PyTorch user
would: nn.Module, vectorized over the batch, one fused optimizer step (foreach). Prints one line
per mode: `torch_<mode>_ms=<median step ms>` for eager and torch.compile.

  python3 bench/gpu_din_torch.py [--device=cuda] [--b=2048] [--t=50] [--d=36] [--iters=20]
                                 [--no_compile]
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn


class DinUnit(nn.Module):
    def __init__(self, d, h1, h2):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(4 * d, h1), nn.Sigmoid(), nn.Linear(h1, h2),
                                 nn.Sigmoid(), nn.Linear(h2, 1))

    def forward(self, q, k, mask):
        qe = q.unsqueeze(1).expand_as(k)
        scores = self.mlp(torch.cat([qe, k, qe - k, qe * k], dim=-1)).squeeze(-1)
        w = scores * mask
        return torch.bmm(w.unsqueeze(1), k).squeeze(1)


class Din(nn.Module):
    def __init__(self, d, h1=80, h2=40):
        super().__init__()
        self.unit = DinUnit(d, h1, h2)
        self.head = nn.Sequential(nn.Linear(2 * d, 200), nn.ReLU(), nn.Linear(200, 80), nn.ReLU(),
                                  nn.Linear(80, 1))

    def forward(self, q, k, mask):
        pooled = self.unit(q, k, mask)
        return self.head(torch.cat([q, pooled], dim=-1)).squeeze(-1)


def time_steps(model, step_fn, inputs, iters, sync):
    for _ in range(3):
        step_fn(*inputs)
    sync()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        step_fn(*inputs)
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--b", type=int, default=2048)
    ap.add_argument("--t", type=int, default=50)
    ap.add_argument("--d", type=int, default=36)
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--no_compile", action="store_true")
    args = ap.parse_args()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    b, t, d = args.b, args.t, args.d
    q = torch.randn(b, d, device=dev)
    k = torch.randn(b, t, d, device=dev)
    lengths = torch.randint(1, t + 1, (b, 1), device=dev)
    mask = (torch.arange(t, device=dev).unsqueeze(0) < lengths).float()
    labels = torch.randint(0, 2, (b,), device=dev).float()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    can_compile = hasattr(torch, "compile")
    if not can_compile and not args.no_compile:
        print(f"torch {torch.__version__} has no torch.compile: compiled mode left out", flush=True)
    modes = [("eager", False)] + ([("compile", True)] if can_compile and not args.no_compile else [])
    for name, compiled in modes:
        model = Din(d).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        fwd = torch.compile(model) if compiled else model
        loss_fn = nn.BCEWithLogitsLoss()

        def step(q, k, mask, labels):
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(fwd(q, k, mask), labels)
            loss.backward()
            opt.step()

        ms = time_steps(model, step, (q, k, mask, labels), args.iters, sync)
        print(f"torch_{name}_ms={ms:.4f}", flush=True)


if __name__ == "__main__":
    main()
