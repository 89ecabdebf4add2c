#!/usr/bin/env python3
"""Peer reference: the project's Llama-style decoder in PyTorch, for bench:lm --peer.

Same architecture as src/models/llama.ts: token embedding, RMSNorm (eps 1e-5), rotary position
embeddings on adjacent pairs, grouped-query causal attention, SwiGLU feed-forward, tied or untied
head, no biases; AdamW with the same settings and global gradient-norm clipping. Trains on random
windows of a text file (characters as tokens, first 90% for training, last 10% for validation,
as lm:train) or of random token ids, then measures prefill and batch-1 greedy decoding with a KV
cache (a Python loop, one forward per token): an untimed run, then --decode-runs timed runs of
--decode-tokens tokens after the prompt (its prefill and first token untimed), at 1 and at 2
threads, reporting the better. Prints one JSON line. With --serve, the timed training runs in
blocks asked for on stdin (see serve), so that bench:lm interleaves them with its own.

Setup (Debian): apt-get install -y python3-torch python3-numpy libopenblas0-pthread
Run: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE /usr/bin/python3 torch_llama.py --data FILE ...
"""
import argparse, json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_heads):
        super().__init__()
        self.heads, self.kv_heads, self.hd = heads, kv_heads, dim // heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.v = nn.Linear(dim, kv_heads * self.hd, bias=False)
        self.o = nn.Linear(dim, dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        B, T, _ = x.shape
        q = rope(self.q(x).view(B, T, self.heads, self.hd), cos, sin)
        k = rope(self.k(x).view(B, T, self.kv_heads, self.hd), cos, sin)
        v = self.v(x).view(B, T, self.kv_heads, self.hd)
        if cache is not None:
            if "k" in cache:
                k = torch.cat([cache["k"], k], 1)
                v = torch.cat([cache["v"], v], 1)
            cache["k"], cache["v"] = k, v
        rep = self.heads // self.kv_heads
        k = k.repeat_interleave(rep, 2).transpose(1, 2)
        v = v.repeat_interleave(rep, 2).transpose(1, 2)
        q = q.transpose(1, 2)
        # Written out: F.scaled_dot_product_attention arrived in PyTorch 2.0, Debian has 1.13.
        # Query i (position L − T + i) sees keys 0 … L − T + i of the L in k.
        L = k.shape[2]
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(self.hd)
        if T > 1:
            allowed = torch.ones(T, L, dtype=torch.bool).tril(L - T)
            scores = scores.masked_fill(~allowed, float("-inf"))
        y = scores.softmax(-1) @ v
        return self.o(y.transpose(1, 2).reshape(B, T, -1))


def rope(x, cos, sin):
    # x [B, T, H, hd]: adjacent pairs (2i, 2i+1) rotate by pos * theta^(-2i/hd).
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[:, None, :], sin[:, None, :]
    return torch.stack([a * c - b * s, a * s + b * c], -1).flatten(-2)


class Block(nn.Module):
    def __init__(self, dim, hidden, heads, kv_heads):
        super().__init__()
        self.n1, self.n2 = RMSNorm(dim), RMSNorm(dim)
        self.attn = Attention(dim, heads, kv_heads)
        self.gate = nn.Linear(dim, hidden, bias=False)
        self.up = nn.Linear(dim, hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x, cos, sin, cache=None):
        x = x + self.attn(self.n1(x), cos, sin, cache)
        h = self.n2(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


class RMSNorm(nn.Module):
    """Written out: torch.nn.RMSNorm arrived in PyTorch 2.4, Debian has 1.13."""

    def __init__(self, dim, eps=1e-5):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(dim)), eps

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Llama(nn.Module):
    def __init__(self, a):
        super().__init__()
        self.embed = nn.Embedding(a.vocab, a.dim)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(a.dim, a.hidden, a.heads, a.kv_heads) for _ in range(a.layers))
        self.norm = RMSNorm(a.dim)
        self.head = None if not a.untied else nn.Linear(a.dim, a.vocab, bias=False)
        hd = a.dim // a.heads
        freqs = a.rope_theta ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.arange(a.max_len, dtype=torch.float64)[:, None] * freqs[None, :]
        self.register_buffer("cos", ang.cos().float(), persistent=False)
        self.register_buffer("sin", ang.sin().float(), persistent=False)

    def forward(self, ids, start=0, caches=None):
        T = ids.shape[1]
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]
        x = self.embed(ids)
        for i, b in enumerate(self.blocks):
            x = b(x, cos, sin, None if caches is None else caches[i])
        x = self.norm(x)
        return x @ self.embed.weight.T if self.head is None else self.head(x)


def windows(tokens, B, T, gen):
    starts = torch.randint(0, len(tokens) - T, (B,), generator=gen)
    rows = torch.stack([tokens[s:s + T + 1] for s in starts.tolist()])
    return rows[:, :-1], rows[:, 1:]


@torch.no_grad()
def valid_loss(model, tokens, T, B):
    """Mean nats per token over the windows of T targets that tile tokens (as lm:eval)."""
    count = (len(tokens) - 1) // T
    total, seen = 0.0, 0
    for w in range(0, count, B):
        rows = torch.stack([tokens[i * T:i * T + T + 1] for i in range(w, min(w + B, count))])
        logits = model(rows[:, :-1])
        total += F.cross_entropy(logits.flatten(0, 1), rows[:, 1:].flatten(), reduction="sum").item()
        seen += rows[:, 1:].numel()
    return total / seen


@torch.no_grad()
def decode_seconds(model, prompt, tokens):
    """Seconds of greedy decoding `tokens` tokens after the prompt's prefill and first token."""
    caches = [dict() for _ in model.blocks]
    nxt = model(prompt, 0, caches)[:, -1].argmax(-1, keepdim=True)
    nxt.item()
    t = time.perf_counter()
    for i in range(tokens):
        logits = model(nxt, prompt.shape[1] + i, caches)
        nxt = logits[:, -1].argmax(-1, keepdim=True)
        nxt.item()
    return time.perf_counter() - t


def decode_rate(model, prompt, tokens, runs):
    """(tokens/s, threads): the better of 1 and 2 threads, each after an untimed run."""
    best = (0.0, 0)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        decode_seconds(model, prompt, tokens)
        seconds = sum(decode_seconds(model, prompt, tokens) for _ in range(runs))
        best = max(best, (runs * tokens / seconds, threads))
    return best


def timed(train, steps):
    """(seconds, steps) of `steps` training steps."""
    t0 = time.perf_counter()
    train(steps)
    return time.perf_counter() - t0, steps


def serve(train):
    """Trains in blocks on request, so that the caller can interleave its own blocks with ours:
    prints {"ready": true}, then answers each stdin line "train N" with {"seconds": s} after N
    steps, until a line "done"; returns the (seconds, steps) of all the blocks."""
    print(json.dumps({"ready": True}), flush=True)
    total_s, total_steps = 0.0, 0
    for line in sys.stdin:
        words = line.split()
        if words == ["done"]:
            break
        if len(words) != 2 or words[0] != "train" or not words[1].isdigit():
            raise SystemExit(f"--serve: expected 'train N' or 'done', got {line!r}")
        seconds, steps = timed(train, int(words[1]))
        total_s, total_steps = total_s + seconds, total_steps + steps
        print(json.dumps({"seconds": seconds}), flush=True)
    return total_s, total_steps


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", help="text file (characters as tokens); random ids without it")
    p.add_argument("--vocab", type=int, default=512)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--hidden", type=int, default=172)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--untied", action="store_true")
    p.add_argument("--rope-theta", type=float, default=10000)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--clip", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--eval", action="store_true", help="score the whole validation split after training")
    p.add_argument("--prompt-tokens", type=int, default=64)
    p.add_argument("--prompt-ids", help="comma-separated prompt token ids (instead of random ones)")
    p.add_argument("--decode-prompt-ids", help="the prompt decoding starts from (default: the prompt)")
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--decode-runs", type=int, default=1)
    p.add_argument("--decode-only", action="store_true", help="skip training")
    p.add_argument("--serve", action="store_true", help="train in blocks asked for on stdin (see serve)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed)
    valid = None
    if a.data:
        text = open(a.data, encoding="utf-8").read()
        chars = sorted(set(text))
        a.vocab = len(chars)
        idx = {c: i for i, c in enumerate(chars)}
        cut = int(len(text) * 0.9)
        train_tokens = torch.tensor([idx[c] for c in text[:cut]], dtype=torch.long)
        valid = torch.tensor([idx[c] for c in text[cut:]], dtype=torch.long)
    else:
        train_tokens = torch.randint(0, a.vocab, (1 << 20,), generator=gen)
    if a.prompt_ids:
        a.prompt_tokens = len(a.prompt_ids.split(","))
    start = len(a.decode_prompt_ids.split(",")) if a.decode_prompt_ids else a.prompt_tokens
    a.max_len = max(a.seq_len, a.prompt_tokens, start + a.decode_tokens)
    model = Llama(a)
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, weight_decay=0.0)
    loss_value = float("nan")

    def train(steps):
        nonlocal loss_value
        for _ in range(steps):
            x, y = windows(train_tokens, a.batch_size, a.seq_len, gen)
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if a.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), a.clip)
            opt.step()
            loss_value = loss.item()

    out = {"parameters": sum(p.numel() for p in model.parameters())}
    train_s, steps = 0.0, 0
    if not a.decode_only:
        train(a.warmup)
    if a.serve:
        train_s, steps = serve(train)
    elif not a.decode_only:
        train_s, steps = timed(train, a.steps)
    if steps > 0:
        out.update({
            "steps": steps,
            "train_loss": loss_value,
            "ms_per_step": 1000 * train_s / max(steps, 1),
            "train_tokens_per_second": steps * a.batch_size * a.seq_len / train_s,
        })
    if valid is not None and a.eval:
        out["valid_loss"] = valid_loss(model, valid, a.seq_len, a.batch_size)
    model.eval()
    with torch.no_grad():
        if a.prompt_ids:
            prompt = torch.tensor([[int(i) for i in a.prompt_ids.split(",")]], dtype=torch.long)
        else:
            prompt = torch.randint(0, a.vocab, (1, a.prompt_tokens), generator=gen)
        model(prompt)
        t = time.perf_counter()
        reps = 3
        for _ in range(reps):
            model(prompt)
        out["prefill_tokens_per_second"] = reps * a.prompt_tokens / (time.perf_counter() - t)
    if a.decode_prompt_ids:
        prompt = torch.tensor([[int(i) for i in a.decode_prompt_ids.split(",")]], dtype=torch.long)
    rate, threads = decode_rate(model, prompt, a.decode_tokens, a.decode_runs)
    out["decode_tokens_per_second"], out["decode_threads"] = rate, threads
    print(json.dumps(out))


if __name__ == "__main__":
    main()
