#!/usr/bin/env python3
"""PyTorch twins of attnps's retrieval models, on attnps's own prepared files and protocol.

  python3 bench/retrieval_torch.py --model comirec_sa --data data/ml-100k [--interests 4]
  python3 bench/retrieval_torch.py --model sasrec --data data/ml-100k [--blocks 2 --heads 1]

Data: DIR/sequences.tsv (user \\t items \\t cates, time-ordered) and DIR/item_cates.tsv (the corpus,
items 1..N) from `attnps prepare`. The protocol is worker/data/retrieval_examples.h's:
- User split: GroupOfUser, the splitmix64 hash of ops/random.h ported bit-exactly (stream "USERS",
  key StreamKey(split_seed, stream), u = StreamUniform53(key, user): u < test_fraction test, < test + valid_fraction valid,
  else train). Only train users are trained on; test users are evaluated; valid users are unused.
- comirec_sa trains on next-item examples (CutNextItemExamples, window T = --maxlen, min_history 1):
  one per position p >= 1, the last T items before p as history, item p the target.
  sasrec trains on encoder windows (CutSequenceWindows): from the end back, windows of T targets,
  each with the item before it as input; every valid position predicts its next item.
- Histories are right-padded (item 0, a zero row, masked); position embeddings [T, D] are indexed
  from the oldest item of the window, N(0, 0.01), dense.
- ComiRec-SA (Cen et al., KDD'20, as ops/multi_interest.h): A = masked softmax over T of
  (tanh((H + P) W1) W2)^T [B, K, T], V = A H [B, K, D]; W1 [D, 4D], W2 [4D, K] without bias, torch
  Linear's default init. Training reads out the interest with the largest dot product with the
  target's output embedding.
- Self-attention encoder (SASRec-style, Kang & McAuley ICDM'18; no sqrt(D) scaling): item embedding
  + position embedding, dropout, `blocks` pre-LayerNorm nn.TransformerEncoderLayer (norm_first,
  relu, batch_first, dim_feedforward = D, causal mask + key padding mask) and a final LayerNorm.
  As attnps's EncoderBlock: no dropout on the attention probabilities, the q/k/v/out projections
  (weights and biases) re-initialized as torch Linear's default, U(-1/sqrt(D), 1/sqrt(D)).
- Loss: sampled softmax, S = min(--negatives, N) negatives per step shared by the batch (for sasrec
  by every target position of the batch), drawn with replacement log-uniformly over popularity
  ranks (RankByCount: count as a training target descending, ties by smaller id, unseen items last;
  Q(r) = log((r + 2) / (r + 1)) / log(N + 1), inverse CDF r = floor(exp(u log(N + 1))) - 1), every
  logit corrected by - log(S Q(i)), accidental hits (a negative equal to the row's positive)
  removed (-inf); mean over rows (examples; target positions for sasrec). The draws come from
  torch's generator (seeded by --seed), not attnps's stream.
- Output embeddings: a separate table from the input embeddings, no bias. Both tables sparse
  nn.Embedding, N(0, 0.01) cut at 2 sigma, torch.optim.SparseAdam lr 1e-3; dense weights
  (positions, W1, W2, encoder blocks, LayerNorms) Adam lr 1e-3.
- torch.set_flush_denormal(True), as attnps flushes denormals to zero (ops/blas.h): without it
  both sides slow down up to 3x once softmax tails underflow.
- comirec_sa evaluation, the ComiRec protocol: per test user the first floor(0.8 len) behaviours in
  (the last T kept), the rest to predict; every item of item_cates.tsv scored by each interest's
  dot product with the output embeddings; each interest's top N merged by each item's best score
  (MergeByScore; ties to the smaller id); Recall@N = hits / |distinct targets|, NDCG@N = DCG / IDCG
  (IDCG over min(|targets|, N) hits), HitRate@N; N = 20, 50; means over the test users.
- sasrec evaluation, the SASRec protocol: leave-one-out (the last item the target, the T before it
  in); the user vector is the last position's output; the target ranked among 100 distinct items
  the user never interacted with (SampleUnseenItems ported bit-exactly, keyed by (split_seed,
  user)); ties count against the target; HR@10 = rank < 10, NDCG@10 = 1 / log2(rank + 2).
- Samples (train_samples, train_samples_per_s) are examples for comirec_sa and windows for sasrec;
  the rate counts the training steps only (negative draws, forward, backward, optimizer steps),
  not the data loading. Prints `train_samples=...`, per epoch `epoch=E train_loss=...
  train_samples_per_s=...`, the metrics after the last epoch and `samples_per_s=<median>`.
"""
import argparse, math, statistics, time
import numpy as np
import torch, torch.nn as nn, torch.nn.functional as F

# ---- ops/random.h and worker/data/retrieval_examples.cc, bit-exact --------------------------------
M64 = (1 << 64) - 1
GAMMA = 0x9E3779B97F4A7C15
SPLIT_STREAM, UNSEEN_STREAM = 0x5553455253, 0x554E5345454E  # "USERS", "UNSEEN"


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def stream_key(a, b=0, c=0):
    return mix64(((mix64(mix64((a + GAMMA) & M64) ^ b) + GAMMA) & M64) ^ c)


def stream_bits(key, i):
    return mix64((key + (i + 1) * GAMMA) & M64)


def group_of_user(user, seed, valid_fraction=0.1, test_fraction=0.1):
    u = (stream_bits(stream_key(seed, SPLIT_STREAM), user) >> 11) * (1.0 / 9007199254740992.0)
    return "test" if u < test_fraction else "valid" if u < test_fraction + valid_fraction else "train"


def sample_unseen_items(user, items, n, count, seed):
    seen = sorted(set(items)); seen_set = set(seen)
    unseen = n - sum(1 for i in seen if 1 <= i <= n)
    want = min(max(count, 0), unseen)
    key = stream_key(seed, UNSEEN_STREAM, user)
    if unseen <= 4 * want:  # few left: a partial shuffle of the unseen ids
        out = [i for i in range(1, n + 1) if i not in seen_set]
        for i in range(want):
            j = i + stream_bits(key, i) % (len(out) - i)
            out[i], out[j] = out[j], out[i]
        return out[:want]
    out, chosen, draw = [], set(), 0
    while len(out) < want:
        item = 1 + stream_bits(key, draw) % n; draw += 1
        if item in seen_set or item in chosen:
            continue
        chosen.add(item); out.append(item)
    return out


# ---- data ------------------------------------------------------------------------------------------
def load_sequences(path):
    seqs = []
    with open(path) as f:
        for line in f:
            p = line.rstrip("\n").split("\t")
            if len(p) >= 2 and p[0]:
                seqs.append((int(p[0]), [int(x) for x in p[1].split(",") if x]))
    return seqs


def load_items(path):
    with open(path) as f:
        return np.array([int(l.split("\t")[0]) for l in f if l.strip()], dtype=np.int64)


def pad(rows, T):
    out = np.zeros((len(rows), T), dtype=np.int64)
    for r, x in enumerate(rows):
        out[r, :len(x)] = x
    return out


def next_item_examples(seqs, T):
    """CutNextItemExamples(window T, min_history 1): (hist [E, T] right-padded, target [E])."""
    hist, tgt = [], []
    for _, s in seqs:
        for p in range(1, len(s)):
            hist.append(s[max(0, p - T):p]); tgt.append(s[p])
    return pad(hist, T), np.array(tgt, dtype=np.int64)


def sequence_windows(seqs, T):
    """CutSequenceWindows(window T): (hist [W, T], targets [W, T]), hist[i] predicts targets[i]."""
    hist, tgt = [], []
    for _, s in seqs:
        end = len(s)
        while end >= 2:
            begin = end - T if end > T + 1 else 1
            hist.append(s[begin - 1:end - 1]); tgt.append(s[begin:end]); end = begin
    return pad(hist, T), pad(tgt, T)


class LogUniformSampler:
    """S negatives per step, log-uniform over popularity ranks, with log(S Q(i)) per item."""
    def __init__(self, targets, n, s, gen):
        counts = np.zeros(n + 1, dtype=np.int64)
        np.add.at(counts, targets[(targets >= 1) & (targets <= n)], 1)
        ids = np.arange(1, n + 1)
        self.ranked = torch.from_numpy(ids[np.argsort(-counts[1:], kind="stable")])
        rank = np.full(n + 1, n - 1, dtype=np.int64); rank[self.ranked.numpy()] = np.arange(n)
        self.log_n1, self.n, self.s, self.gen = math.log(n + 1), n, s, gen
        q = np.log1p(1.0 / (rank + 1.0)) / self.log_n1
        self.log_q = torch.from_numpy(np.log(s * q).astype(np.float32))  # by item id

    def draw(self):
        u = torch.rand(self.s, generator=self.gen, dtype=torch.float64)
        r = (torch.floor(torch.exp(u * self.log_n1)) - 1).long().clamp(0, self.n - 1)
        ids = self.ranked[r]
        return ids, self.log_q[ids]


def sampled_softmax(u, pos_emb, neg_emb, pos_ids, neg_ids, log_q):
    """u, pos_emb [M, D], neg_emb [S, D]: mean over rows of -log softmax(corrected logits)[0]."""
    lp = (u * pos_emb).sum(-1, keepdim=True) - log_q[pos_ids].unsqueeze(-1)
    ln = (u @ neg_emb.t() - log_q[neg_ids]).masked_fill(neg_ids.unsqueeze(0) == pos_ids.unsqueeze(1),
                                                        float("-inf"))
    return -torch.log_softmax(torch.cat([lp, ln], 1), 1)[:, 0].mean()


# ---- models ----------------------------------------------------------------------------------------
def sparse_table(n, d):
    """Rows 1..n (0 the zero padding row), N(0, 0.01) cut at 2 sigma, for SparseAdam."""
    e = nn.Embedding(n + 1, d, padding_idx=0, sparse=True)
    with torch.no_grad():
        nn.init.trunc_normal_(e.weight, std=0.01, a=-0.02, b=0.02); e.weight[0].zero_()
    return e


class ComiRecSA(nn.Module):
    def __init__(self, n_items, d, k, T):
        super().__init__()
        self.item, self.out = sparse_table(n_items, d), sparse_table(n_items, d)
        self.pos = nn.Parameter(torch.randn(T, d) * 0.01)
        self.w1 = nn.Linear(d, 4 * d, bias=False); self.w2 = nn.Linear(4 * d, k, bias=False)

    def interests(self, hist):                                            # hist [B, T]
        H = self.item(hist); m = (hist > 0).unsqueeze(1)                  # B,T,D  B,1,T
        s = self.w2(torch.tanh(self.w1(H + self.pos[:hist.shape[1]]))).transpose(1, 2)  # B,K,T
        A = torch.softmax(s.masked_fill(~m, -1e30), -1) * m               # a row without history: 0
        return A @ H                                                      # B,K,D

    def loss(self, hist, tgt, neg_ids, log_q):
        V = self.interests(hist); B = len(tgt)
        E = self.out(torch.cat([tgt, neg_ids])); pos, neg = E[:B], E[B:]
        best = (V @ pos.unsqueeze(-1)).squeeze(-1).argmax(1)              # the closest interest
        return sampled_softmax(V[torch.arange(B), best], pos, neg, tgt, neg_ids, log_q)


class SASRec(nn.Module):
    def __init__(self, n_items, d, T, blocks, heads, dropout):
        super().__init__()
        self.item, self.out = sparse_table(n_items, d), sparse_table(n_items, d)
        self.pos = nn.Parameter(torch.randn(T, d) * 0.01)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(d, heads, d, dropout, activation="relu", batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, blocks, norm=nn.LayerNorm(d),
                                             enable_nested_tensor=False)
        k = 1.0 / d ** 0.5
        for l in self.encoder.layers:
            l.self_attn.dropout = 0.0
            for w in (l.self_attn.in_proj_weight, l.self_attn.in_proj_bias,
                      l.self_attn.out_proj.weight, l.self_attn.out_proj.bias):
                nn.init.uniform_(w, -k, k)

    def encode(self, hist):                                               # [B, T] -> [B, T, D]
        T = hist.shape[1]; mask = hist > 0
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)        # True: not attended
        X = self.drop(self.item(hist) + self.pos[:T])
        return self.encoder(X, mask=causal, src_key_padding_mask=~mask)

    def loss(self, hist, tgt, neg_ids, log_q):
        O = self.encode(hist); m = tgt > 0
        pos_ids = tgt[m]; M = len(pos_ids)
        E = self.out(torch.cat([pos_ids, neg_ids]))
        return sampled_softmax(O[m], E[:M], E[M:], pos_ids, neg_ids, log_q)

    def user_vectors(self, hist):
        O = self.encode(hist)
        return O[torch.arange(len(hist)), (hist > 0).sum(1) - 1]


# ---- evaluation ------------------------------------------------------------------------------------
def eval_comirec(model, seqs, T, corpus, ns=(20, 50), frac=0.8, chunk=256):
    queries = []
    for _, s in seqs:
        k = int(math.floor(len(s) * frac))
        if 1 <= k < len(s):
            queries.append((s[max(0, k - T):k], set(s[k:])))
    sums = {n: [0.0, 0.0, 0.0] for n in ns}
    cand = torch.from_numpy(corpus); C = len(corpus)
    with torch.no_grad():
        out = model.out.weight[cand]                                      # C,D
        for c0 in range(0, len(queries), chunk):
            qs = queries[c0:c0 + chunk]; U = len(qs)
            scores = model.interests(torch.from_numpy(pad([q[0] for q in qs], T))) @ out.t()  # U,K,C
            for n in ns:
                idx = scores.topk(min(n, C), -1)[1]                        # each interest's top n
                listed = torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, idx, True)
                best = scores.masked_fill(~listed, float("-inf")).amax(1)  # best listed score
                ranked = cand[best.sort(stable=True, dim=1, descending=True)[1][:, :n]].numpy()
                for (_, tg), r in zip(qs, ranked):
                    hit = np.fromiter((i in tg for i in r), bool, len(r))
                    disc = 1.0 / np.log2(np.arange(len(r)) + 2.0)
                    sums[n][0] += hit.sum() / len(tg)
                    sums[n][1] += (disc * hit).sum() / disc[:min(len(tg), n)].sum()
                    sums[n][2] += float(hit.any())
    U = max(len(queries), 1)
    return len(queries), " ".join(f"recall@{n}={v[0] / U:.4f} ndcg@{n}={v[1] / U:.4f} hr@{n}={v[2] / U:.4f}"
                                  for n, v in sums.items())


def eval_sasrec(model, seqs, T, n_items, seed, n=10, candidates=100, chunk=256):
    queries = []
    for user, s in seqs:
        if len(s) >= 2:
            queries.append((s[max(0, len(s) - 1 - T):len(s) - 1],
                            [s[-1]] + sample_unseen_items(user, s, n_items, candidates, seed)))
    hr = ndcg = 0.0
    with torch.no_grad():
        for c0 in range(0, len(queries), chunk):
            qs = queries[c0:c0 + chunk]
            u = model.user_vectors(torch.from_numpy(pad([q[0] for q in qs], T)))
            items = torch.from_numpy(pad([q[1] for q in qs], candidates + 1))  # target first
            sc = (model.out(items) * u.unsqueeze(1)).sum(-1)
            valid = items > 0
            rank = ((sc[:, 1:] >= sc[:, :1]) & valid[:, 1:]).sum(1)         # ties against the target
            hr += (rank < n).sum().item()
            ndcg += torch.where(rank < n, 1.0 / torch.log2(rank.double() + 2), torch.zeros(())).sum().item()
    U = max(len(queries), 1)
    return len(queries), f"hr@{n}={hr / U:.4f} ndcg@{n}={ndcg / U:.4f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="comirec_sa", choices=["comirec_sa", "sasrec"])
    ap.add_argument("--data", required=True, help="a directory with sequences.tsv, item_cates.tsv")
    ap.add_argument("--dim", type=int, default=64); ap.add_argument("--interests", type=int, default=4)
    ap.add_argument("--maxlen", type=int, default=0, help="T; 0 = 20 (comirec_sa), 50 (sasrec)")
    ap.add_argument("--batch", type=int, default=128); ap.add_argument("--negatives", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2); ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2); ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--blocks", type=int, default=2); ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.2); ap.add_argument("--split_seed", type=int, default=1)
    ap.add_argument("--valid_fraction", type=float, default=0.1)
    ap.add_argument("--test_fraction", type=float, default=0.1)
    a = ap.parse_args()
    T = a.maxlen or (20 if a.model == "comirec_sa" else 50)
    torch.set_num_threads(a.threads); torch.manual_seed(a.seed)
    torch.set_flush_denormal(True)  # as attnps (ops/blas.h EnableFlushToZero): denormals are 0
    rng = np.random.default_rng(a.seed); gen = torch.Generator().manual_seed(a.seed)
    seqs = load_sequences(a.data + "/sequences.tsv")
    corpus = load_items(a.data + "/item_cates.tsv")
    n_items = max(int(corpus.max()), max((max(s) for _, s in seqs if s), default=0))
    groups = {"train": [], "valid": [], "test": []}
    for u, s in seqs:
        groups[group_of_user(u, a.split_seed, a.valid_fraction, a.test_fraction)].append((u, s))
    if a.model == "comirec_sa":
        hist, tgt = next_item_examples(groups["train"], T)
        model = ComiRecSA(n_items, a.dim, a.interests, T)
    else:
        hist, tgt = sequence_windows(groups["train"], T)
        model = SASRec(n_items, a.dim, T, a.blocks, a.heads, a.dropout)
    S = min(a.negatives, n_items)
    sampler = LogUniformSampler(tgt[tgt > 0], n_items, S, gen)
    print(f"train_samples={len(hist)} test_users={len(groups['test'])} items={n_items} "
          f"train_users={len(groups['train'])} valid_users={len(groups['valid'])} negatives={S} T={T}")
    emb = list(model.item.parameters()) + list(model.out.parameters())
    dense = [p for n, p in model.named_parameters() if not n.startswith(("item.", "out."))]
    opts = [torch.optim.SparseAdam(emb, lr=a.lr), torch.optim.Adam(dense, lr=a.lr)]
    hist_t, tgt_t = torch.from_numpy(hist), torch.from_numpy(tgt)
    rates = []
    for ep in range(a.epochs):
        model.train(); order = torch.from_numpy(rng.permutation(len(hist)))
        t_train = 0.0; losses = []
        for b in range(0, len(order), a.batch):
            idx = order[b:b + a.batch]; h, y = hist_t[idx], tgt_t[idx]
            t0 = time.perf_counter()
            neg_ids, _ = sampler.draw()
            loss = model.loss(h, y, neg_ids, sampler.log_q)
            for o in opts: o.zero_grad()
            loss.backward()
            for o in opts: o.step()
            t_train += time.perf_counter() - t0; losses.append(loss.item())
        rates.append(len(order) / t_train)
        print(f"epoch={ep + 1} train_loss={np.mean(losses):.4f} train_samples_per_s={rates[-1]:.0f}")
    model.eval(); t0 = time.perf_counter()
    if a.model == "comirec_sa":
        users, line = eval_comirec(model, groups["test"], T, corpus)
    else:
        users, line = eval_sasrec(model, groups["test"], T, n_items, a.split_seed)
    print(f"{line} eval_users={users} eval_s={time.perf_counter() - t0:.1f}")
    print(f"samples_per_s={statistics.median(rates):.0f}")


if __name__ == "__main__":
    main()
