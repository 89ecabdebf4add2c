#!/usr/bin/env python3
"""Peer reference: CoLES in PyTorch, for bench:ssl --peer.

Same model as src/models/event_encoder.ts with the GRU encoder: an embedding per categorical
field, a linear projection of the standardised numerics and time gap, concatenated per event, a
one-layer nn.GRU over packed variable-length sequences whose last valid state is the embedding;
the CoLES margin loss with hard negatives on L2-normalised embeddings (positives: slices of one
client; per row the `negatives` most similar other clients' rows), averaged over rows; Adam with
global gradient-norm clipping. Trains on the exact batches bench:ssl wrote (the same slices),
timing `steps` steps after `warmup` (with --serve, blocks of steps asked for on stdin, which
bench:ssl interleaves with its own). Prints one JSON line.

Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 torch_coles.py --batches FILE
"""
import argparse, json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Encoder(nn.Module):
    def __init__(self, vocabs, numeric_inputs, category_dim, numeric_dim, hidden):
        super().__init__()
        self.tables = nn.ModuleList(nn.Embedding(v, category_dim) for v in vocabs)
        self.numeric = nn.Linear(numeric_inputs, numeric_dim)
        self.gru = nn.GRU(len(vocabs) * category_dim + numeric_dim, hidden, batch_first=True)

    def forward(self, cats, numeric, lengths):
        x = torch.cat([t(c) for t, c in zip(self.tables, cats)] + [self.numeric(numeric)], -1)
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, h = self.gru(packed)
        return h[0]


def coles_loss(z, clients, margin, negatives):
    u = F.normalize(z, dim=1)
    sim = u @ u.T
    same = clients[:, None] == clients[None, :]
    eye = torch.eye(len(clients), dtype=torch.bool)
    d2 = (2 - 2 * sim).clamp_min(0)
    pos = (d2 * (same & ~eye)).sum(1)
    neg_sim = sim.masked_fill(same, -3.0)
    k = min(negatives, int((~same).sum(1).min()))
    hard = neg_sim.topk(k, dim=1).values if k > 0 else sim[:, :0]
    d = (2 - 2 * hard).clamp_min(1e-12).sqrt()
    neg = (margin - d).clamp_min(0).pow(2).sum(1)
    return (pos + neg).mean()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batches", required=True)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1)
    # Both cores, as llvmpipe uses them (PyTorch's default here is one thread).
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--serve", action="store_true", help="train in blocks asked for on stdin (see serve)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    spec = json.load(open(a.batches))
    torch.manual_seed(spec["seed"])
    model = Encoder(spec["vocabs"], spec["numericInputs"], spec["categoryDim"], spec["numericDim"], spec["hidden"])
    opt = torch.optim.Adam(model.parameters(), lr=spec["lr"])
    batches = []
    for b in spec["batches"]:
        rows, steps = b["rows"], b["steps"]
        cats = [torch.tensor(c, dtype=torch.long).view(rows, steps) for c in b["categorical"]]
        numeric = torch.tensor(b["numeric"], dtype=torch.float32).view(rows, steps, -1)
        batches.append((cats, numeric, torch.tensor(b["lengths"]), torch.tensor(b["clients"]), b["clientCount"]))

    def step(b):
        cats, numeric, lengths, clients, _ = b
        opt.zero_grad()
        loss = coles_loss(model(cats, numeric, lengths), clients, spec["margin"], spec["negatives"])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), spec["clip"])
        opt.step()
        return loss.item()

    for i in range(a.warmup):
        step(batches[i % len(batches)])
    timed = {"steps": 0, "seconds": 0.0, "clients": 0, "loss": float("nan")}

    def train(steps):
        """Seconds and clients of `steps` timed steps, on the batches after the last ones."""
        start, clients = time.perf_counter(), 0
        for _ in range(steps):
            b = batches[(a.warmup + timed["steps"]) % len(batches)]
            timed["loss"] = step(b)
            timed["steps"] += 1
            clients += b[4]
        seconds = time.perf_counter() - start
        timed["seconds"] += seconds
        timed["clients"] += clients
        return seconds, clients

    if a.serve:
        serve(train)
    else:
        train(a.steps)
    print(json.dumps({
        "peer": "pytorch",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "clients_per_second": timed["clients"] / timed["seconds"],
        "seconds": timed["seconds"],
        "steps": timed["steps"],
        "last_loss": timed["loss"],
    }))


def serve(train):
    """Trains in blocks on request, so that bench:ssl can interleave its own blocks with ours:
    prints {"ready": true}, then answers each stdin line "train N" with {"seconds": s,
    "clients": c} after N steps, until a line "done"."""
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if words == ["done"]:
            return
        if len(words) != 2 or words[0] != "train" or not words[1].isdigit():
            raise SystemExit(f"--serve: expected 'train N' or 'done', got {line!r}")
        seconds, clients = train(int(words[1]))
        print(json.dumps({"seconds": seconds, "clients": clients}), flush=True)


if __name__ == "__main__":
    main()
