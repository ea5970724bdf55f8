#!/usr/bin/env python3
"""The PyTorch twins of bench/gpu_bench's steps: the same models, shapes, init and optimizer.

din: the activation unit (Linear(4D, H1) over [q, k, q-k, q*k], sigmoid, Linear(H1, H2),
  sigmoid, Linear(H2, 1)), raw scores masked at padding, pooled = sum_t w_t k_t.
dien: nn.GRU over the history (cuDNN), scaled dot-product attention of the target on its states
  (masked softmax), an AUGRU cell stepped over T (u' = a u, the state frozen at padding), the
  final state.
bst: the history with the target appended through nn.TransformerEncoderLayer (2 heads, FFN 4D,
  ReLU, dropout 0, post-LN, key padding mask), the masked mean.
Each ends in the head MLP on [q, pooled] (2D -> 200 -> 80 -> 1, ReLU), BCE with logits and Adam
(lr 1e-3, foreach). Written as a competent PyTorch user would: nn.Module, vectorized over the
batch. Prints one line per mode: `torch_<mode>_ms=<median step ms>`, eager and torch.compile.

  python3 bench/gpu_din_torch.py [--model=din|dien|bst] [--device=cuda] [--b=2048] [--t=50]
                                 [--d=36] [--iters=20] [--no_compile]
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


class AugruCell(nn.Module):
    """DIEN's AUGRU: the update gate scaled by the attention score."""

    def __init__(self, d):
        super().__init__()
        self.x = nn.Linear(d, 3 * d)
        self.h = nn.Linear(d, 3 * d, bias=False)

    def forward(self, x, h, a, m):
        xu, xr, xc = self.x(x).chunk(3, dim=-1)
        hu, hr, hc = self.h(h).chunk(3, dim=-1)
        u = torch.sigmoid(xu + hu) * a
        r = torch.sigmoid(xr + hr)
        c = torch.tanh(xc + r * hc)
        new = (1 - u) * h + u * c
        return m * new + (1 - m) * h


class DienInterest(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.gru = nn.GRU(d, d, batch_first=True)
        self.augru = AugruCell(d)
        self.scale = d ** -0.5

    def forward(self, q, k, mask):
        states, _ = self.gru(k)
        scores = torch.bmm(states, q.unsqueeze(-1)).squeeze(-1) * self.scale
        att = torch.softmax(scores.masked_fill(mask == 0, float("-inf")), dim=-1)
        h = torch.zeros_like(q)
        for t in range(k.shape[1]):
            h = self.augru(states[:, t], h, att[:, t:t + 1], mask[:, t:t + 1])
        return h


class BstInterest(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.block = nn.TransformerEncoderLayer(d, 2, 4 * d, dropout=0.0, batch_first=True)

    def forward(self, q, k, mask):
        seq = torch.cat([k, q.unsqueeze(1)], dim=1)
        full = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        y = self.block(seq, src_key_padding_mask=full == 0)
        return (y * full.unsqueeze(-1)).sum(1) / full.sum(1, keepdim=True)


class ComiRecSa(nn.Module):
    """K = 4 interests: A = masked softmax over T of (tanh((H + P) W1) W2)^T, V = A H; the
    target's label-aware softmax over them; sampled softmax against shared negatives."""

    def __init__(self, d, t, k=4):
        super().__init__()
        self.position = nn.Parameter(torch.empty(t, d).uniform_(-d ** -0.5, d ** -0.5))
        self.w1 = nn.Linear(d, 4 * d, bias=False)
        self.w2 = nn.Linear(4 * d, k, bias=False)

    def forward(self, q, k, mask, neg):
        scores = self.w2(torch.tanh(self.w1(k + self.position)))  # [B, T, K]
        a = torch.softmax(scores.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")), dim=1)
        interests = torch.bmm(a.transpose(1, 2), k)  # [B, K, D]
        sel = torch.softmax(torch.bmm(interests, q.unsqueeze(-1)).squeeze(-1), dim=-1)
        u = torch.bmm(sel.unsqueeze(1), interests).squeeze(1)
        logits = torch.cat([(u * q).sum(-1, keepdim=True), u @ neg.t()], dim=1)
        return logits


class Model(nn.Module):
    def __init__(self, kind, d):
        super().__init__()
        self.interest = {"din": lambda: DinUnit(d, 80, 40), "dien": lambda: DienInterest(d),
                         "bst": lambda: BstInterest(d)}[kind]()
        self.head = nn.Sequential(nn.Linear(2 * d, 200), nn.ReLU(), nn.Linear(200, 80), nn.ReLU(),
                                  nn.Linear(80, 1))

    def forward(self, q, k, mask):
        pooled = self.interest(q, k, mask)
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
    ap.add_argument("--model", default="din", choices=["din", "dien", "bst", "comirec_sa"])
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
        retrieval = args.model == "comirec_sa"
        model = (ComiRecSa(d, t) if retrieval else Model(args.model, d)).to(dev)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3, foreach=True)
        fwd = torch.compile(model) if compiled else model
        if retrieval:  # class 0 (the target) against 1024 shared negatives
            neg = torch.randn(1024, d, device=dev)
            target = torch.zeros(b, dtype=torch.long, device=dev)

            def step(q, k, mask, labels):
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(fwd(q, k, mask, neg), target)
                loss.backward()
                opt.step()
        else:
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
