#!/usr/bin/env python3
"""PyTorch twins of attnps's CTR sequence models, trained on attnps's own prepared files.

  python3 bench/ctr_models_torch.py --model dien --samples data/ml-100k [--evolution augru]
  python3 bench/ctr_models_torch.py --model bst --samples data/ml-100k [--target din|sdp|none]

Written as a competent PyTorch user would: nn.Module, vectorized over the batch, nn.GRU on the right-padded
batch for the interest extractor, an AUGRU / AGRU cell looped over time (torch has none), sparse
embeddings with lazy SparseAdam, N(0, 0.01) init cut at 2 sigma, torch's default Linear / GRU init,
Dice as torch BatchNorm1d, Adam 1e-3 on the dense weights: the settings of launch/dien_ml100k.pbtxt.
Negatives for the auxiliary loss are drawn per position from item_cates.tsv (uniform).
BST: nn.TransformerEncoder of post-LN nn.TransformerEncoderLayer (relu, batch_first, the padding
as src_key_padding_mask) over [history, target], learned position embeddings by distance from the
target (nn.Embedding, U(-0.01, 0.01)), the projections re-initialized as torch Linear's default
and no dropout on the attention probabilities (as attnps's blocks; launch/bst_ml100k.pbtxt).
Prints samples=..., epoch=... test_auc=..., train_samples_per_s=... lines.
"""
import argparse, collections, random, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F


def load_samples(path, maxlen):
    """Canonical CTR lines: label, user, item, cate, hist_items, hist_cates (tab-separated)."""
    rows = []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            hist = [int(x) for x in p[4].split(",") if x][-maxlen:]
            hc = [int(x) for x in p[5].split(",") if x][-maxlen:]
            rows.append((int(p[1]), hist, hc, int(p[2]), int(p[3]), float(float(p[0]) >= 0.5)))
    return rows


def load_item_cates(path):
    items, cates = [], []
    with open(path) as f:
        for line in f:
            if line.strip():
                a, b = line.split("\t")
                items.append(int(a)); cates.append(int(b))
    return np.array(items), np.array(cates)


def batches(rows, bs, maxlen, shuffle, rng):
    idx = list(range(len(rows)))
    if shuffle:
        rng.shuffle(idx)
    for b in range(0, len(idx), bs):
        chunk = [rows[k] for k in idx[b:b + bs]]
        B = len(chunk)
        hist = np.zeros((B, maxlen), dtype=np.int64); hc = np.zeros((B, maxlen), dtype=np.int64)
        for r, c in enumerate(chunk):
            hist[r, :len(c[1])] = c[1]; hc[r, :len(c[2])] = c[2]
        yield (torch.from_numpy(hist), torch.from_numpy(hc),
               torch.tensor([c[3] for c in chunk]), torch.tensor([c[4] for c in chunk]),
               torch.tensor([c[5] for c in chunk], dtype=torch.float32), [c[0] for c in chunk])


def sparse_table(n, d):
    """Rows 1..n (0 the zero padding row), N(0, 0.01) cut at 2 sigma, for SparseAdam."""
    e = nn.Embedding(n + 1, d, padding_idx=0, sparse=True)
    with torch.no_grad():
        nn.init.trunc_normal_(e.weight, std=0.01, a=-0.02, b=0.02); e.weight[0].zero_()
    return e


class Dice(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.bn = nn.BatchNorm1d(n, eps=1e-9, affine=False); self.alpha = nn.Parameter(torch.zeros(n))

    def forward(self, x):
        p = torch.sigmoid(self.bn(x)); return p * x + (1 - p) * self.alpha * x


def mlp(inp, hidden=(200, 80)):
    layers, prev = [], inp
    for h in hidden:
        layers += [nn.Linear(prev, h), Dice(h)]; prev = h
    return nn.Sequential(*layers, nn.Linear(prev, 1))


class DinUnit(nn.Module):
    """Scores [q, k, q-k, q*k] -> 80 -> 40 -> 1 (sigmoid), masked softmax over valid positions."""
    def __init__(self, D, att=(80, 40)):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(4 * D, att[0]), nn.Sigmoid(), nn.Linear(att[0], att[1]),
                                 nn.Sigmoid(), nn.Linear(att[1], 1))

    def forward(self, q, k, mask):
        qe = q.unsqueeze(1).expand_as(k)
        s = self.net(torch.cat([qe, k, qe - k, qe * k], -1)).squeeze(-1)
        a = torch.softmax(s.masked_fill(~mask, -1e9), -1)
        return a * mask  # a row without history: all 0


class AttGRUCell(nn.Module):
    """GRU cell with the attention on the update gate: u' = a * u (AUGRU) or u' = a (AGRU)."""
    def __init__(self, D, agru):
        super().__init__()
        self.x2h = nn.Linear(D, 3 * D); self.h2h = nn.Linear(D, 3 * D, bias=False); self.agru = agru
        k = 1.0 / D ** 0.5
        for w in self.parameters():
            nn.init.uniform_(w, -k, k)

    def forward(self, x_proj_t, h, a):
        hu, hr, hc = self.h2h(h).chunk(3, -1)
        xu, xr, xc = x_proj_t.chunk(3, -1)
        u = torch.sigmoid(xu + hu); r = torch.sigmoid(xr + hr)
        c = torch.tanh(xc + r * hc)
        u = a if self.agru else a * u
        return (1 - u) * h + u * c


class DIEN(nn.Module):
    def __init__(self, n_items, n_cats, d=18, evolution="augru", query_projection=True):
        super().__init__()
        self.item, self.cat = sparse_table(n_items, d), sparse_table(n_cats, d)
        D = 2 * d; self.D = D; self.evolution = evolution
        self.extractor = nn.GRU(D, D, batch_first=True)
        # The official code's query map before the unit (model.dien.query_projection).
        self.qproj = nn.Sequential(nn.Linear(D, D), nn.PReLU(D)) if query_projection else None
        self.unit = DinUnit(D)
        if evolution == "aigru":
            self.evolver = nn.GRU(D, D, batch_first=True)
        else:
            self.evolver = AttGRUCell(D, agru=evolution == "agru")
        self.mlp = mlp(4 * D)

    def embed(self, items, cates):
        return torch.cat([self.item(items), self.cat(cates)], -1)

    def forward(self, hist, hc, tgt, tc):
        E = self.embed(hist, hc); q = self.embed(tgt, tc)               # B,T,D  B,D
        mask = hist > 0; lens = mask.sum(1)
        B, T, D = E.shape
        # Right-padded, so the states at valid positions do not see the padding: one nn.GRU call
        # on the padded batch (faster than packing on CPU), the padded states zeroed.
        S = self.extractor(E)[0] * mask.unsqueeze(-1)
        last = (lens - 1).clamp(min=0)
        a = self.unit(self.qproj(q) if self.qproj is not None else q, S, mask)  # B,T
        if self.evolution == "aigru":
            out = self.evolver(S * a.unsqueeze(-1))[0]
            f = out[torch.arange(B), last] * (lens > 0).unsqueeze(-1)
        else:
            xp = self.evolver.x2h(S)                                      # one GEMM for all steps
            h = torch.zeros(B, D); m = mask.unsqueeze(-1).float()
            for t in range(T):
                h_new = self.evolver(xp[:, t], h, a[:, t:t + 1])
                h = m[:, t] * h_new + (1 - m[:, t]) * h
            f = h
        p = (E * mask.unsqueeze(-1)).sum(1)
        logit = self.mlp(torch.cat([p, q, p * q, f], -1)).squeeze(-1)
        return logit, S, E, mask

    def aux_loss(self, S, E, mask, neg_items, neg_cates):
        N = self.embed(neg_items, neg_cates)                              # B,T,D
        pair = mask[:, 1:] & mask[:, :-1]
        h = S[:, :-1]
        pos = (h * E[:, 1:]).sum(-1); neg = (h * N[:, 1:]).sum(-1)
        l = F.softplus(-pos) + F.softplus(neg)
        return (l * pair).sum() / pair.sum().clamp(min=1)


class BST(nn.Module):
    def __init__(self, n_items, n_cats, d=18, maxlen=50, blocks=1, heads=2, ffn=0, dropout=0.1,
                 target="din"):
        super().__init__()
        self.item, self.cat = sparse_table(n_items, d), sparse_table(n_cats, d)
        D = 2 * d; self.D = D; self.target = target
        self.pos = nn.Embedding(maxlen + 1, D)
        nn.init.uniform_(self.pos.weight, -0.01, 0.01)
        layer = nn.TransformerEncoderLayer(D, heads, ffn or 4 * D, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, blocks, enable_nested_tensor=False)
        k = 1.0 / D ** 0.5
        for l in self.encoder.layers:
            l.self_attn.dropout = 0.0
            for w in (l.self_attn.in_proj_weight, l.self_attn.in_proj_bias,
                      l.self_attn.out_proj.weight, l.self_attn.out_proj.bias):
                nn.init.uniform_(w, -k, k)
        if target == "din":
            self.unit = DinUnit(D)
        self.mlp = mlp(3 * D)

    def embed(self, items, cates):
        return torch.cat([self.item(items), self.cat(cates)], -1)

    def forward(self, hist, hc, tgt, tc):
        E = self.embed(hist, hc); q = self.embed(tgt, tc)               # B,T,D  B,D
        mask = hist > 0; lens = mask.sum(1, keepdim=True)
        B, T, D = E.shape
        pos = (lens - torch.arange(T).unsqueeze(0)).clamp(min=0) * mask   # len - i, padding 0
        seq_mask = torch.cat([mask, torch.ones(B, 1, dtype=torch.bool)], 1)
        X = torch.cat([E, q.unsqueeze(1)], 1)
        X = X + self.pos(torch.cat([pos, torch.zeros(B, 1, dtype=torch.long)], 1)) * seq_mask.unsqueeze(-1)
        O = self.encoder(X, src_key_padding_mask=~seq_mask)
        if self.target == "none":
            m = seq_mask.unsqueeze(-1).float()
            pooled = (O * m).sum(1) / m.sum(1)
        else:
            H = O[:, :T]
            if self.target == "din":
                a = self.unit(q, H, mask)
            else:
                s = (H @ q.unsqueeze(-1)).squeeze(-1) / D ** 0.5
                a = torch.softmax(s.masked_fill(~mask, -1e9), -1) * mask
            pooled = (a.unsqueeze(-1) * H).sum(1)
        return (self.mlp(torch.cat([pooled, q, pooled * q], -1)).squeeze(-1),)


def auc(y, s):
    from sklearn.metrics import roc_auc_score
    return roc_auc_score(y, s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="dien", choices=["dien", "bst"])
    ap.add_argument("--samples", required=True, help="a directory with train.tsv, test.tsv, item_cates.tsv")
    ap.add_argument("--evolution", default="augru", choices=["augru", "aigru", "agru"])
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--query-projection", default="on", choices=["on", "off"])
    ap.add_argument("--blocks", type=int, default=1); ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--ffn", type=int, default=0); ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--target", default="din", choices=["din", "sdp", "none"])
    ap.add_argument("--maxlen", type=int, default=50); ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1); ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-3); ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-steps", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads); torch.manual_seed(a.seed); rng = random.Random(a.seed)
    torch.set_flush_denormal(True)  # as attnps (ops/blas.h EnableFlushToZero): denormals are 0
    train = load_samples(a.samples + "/train.tsv", a.maxlen)
    test = load_samples(a.samples + "/test.tsv", a.maxlen)
    pool_items, pool_cates = load_item_cates(a.samples + "/item_cates.tsv")
    n_items = max(int(pool_items.max()), max(max([r[3]] + r[1]) for r in train + test))
    n_cats = max(int(pool_cates.max()), max(max([r[4]] + r[2]) for r in train + test))
    print(f"samples={a.samples} items={n_items} cats={n_cats} train={len(train)} test={len(test)}")
    if a.model == "dien":
        model = DIEN(n_items, n_cats, evolution=a.evolution,
                     query_projection=a.query_projection == "on")
    else:
        model = BST(n_items, n_cats, maxlen=a.maxlen, blocks=a.blocks, heads=a.heads, ffn=a.ffn,
                    dropout=a.dropout, target=a.target)
        a.alpha = 0.0
    emb = list(model.item.parameters()) + list(model.cat.parameters())
    dense = [p for n, p in model.named_parameters() if not n.startswith(("item.", "cat."))]
    opts = [torch.optim.SparseAdam(emb, lr=a.lr), torch.optim.Adam(dense, lr=a.lr)]
    gen = torch.Generator().manual_seed(a.seed)
    pool_items_t = torch.from_numpy(pool_items); pool_cates_t = torch.from_numpy(pool_cates)
    seen = 0; t_train = 0.0; steps = 0
    for ep in range(a.epochs):
        model.train()
        for hist, hc, tgt, tc, y, _ in batches(train, a.batch, a.maxlen, True, rng):
            t0 = time.perf_counter()
            out = model(hist, hc, tgt, tc)
            loss = F.binary_cross_entropy_with_logits(out[0], y)
            if a.alpha > 0:
                S, E, mask = out[1:]
                pick = torch.randint(len(pool_items), hist.shape, generator=gen)
                loss = loss + a.alpha * model.aux_loss(S, E, mask, pool_items_t[pick] * mask,
                                                       pool_cates_t[pick] * mask)
            for o in opts: o.zero_grad()
            loss.backward()
            for o in opts: o.step()
            t_train += time.perf_counter() - t0; seen += len(y); steps += 1
            if a.max_steps and steps >= a.max_steps:
                break
        model.eval(); ys, ss = [], []
        with torch.no_grad():
            for hist, hc, tgt, tc, y, _ in batches(test, 1024, a.maxlen, False, rng):
                ss += model(hist, hc, tgt, tc)[0].tolist(); ys += y.tolist()
        print(f"epoch={ep+1} loss={loss.item():.4f} test_auc={auc(ys, ss):.4f}")
    print(f"train_samples_per_s={seen / t_train:.0f}")


if __name__ == "__main__":
    main()
