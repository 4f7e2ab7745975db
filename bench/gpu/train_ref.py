"""GPT-2 training-speed reference for the GPU check: a nanoGPT-style model and loop in eager
PyTorch (and, with --compile, torch.compile), measured the way copyforge's trainer reports:
tokens/s over the steps after the warm-up and MFU against a bf16 matmul rate measured in the same
process. Same shape as copyforge's configs/model/gpt2-124m.yaml: tied LM head, pre-LayerNorm,
tanh GELU, fused causal attention (scaled_dot_product_attention), fused AdamW, bf16 autocast.

  python3 bench/gpu/train_ref.py --batch 8 --seq 1024 --steps 30 [--compile] [--json OUT]
"""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from common import emit


class Block(nn.Module):
    def __init__(self, c, heads):
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(c), nn.LayerNorm(c)
        self.c_attn, self.c_proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
        self.c_fc, self.mlp_proj = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.heads, c // self.heads).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt2(nn.Module):
    def __init__(self, layers=12, heads=12, c=768, vocab=50257, positions=1024):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, c), nn.Embedding(positions, c)
        self.h = nn.ModuleList(Block(c, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(c)
        for p in self.parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, idx, targets):
        pos = torch.arange(idx.size(1), device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def matmul_rate(dtype=torch.bfloat16, n=8192):
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    a @ b
    torch.cuda.synchronize()
    start, iters = time.perf_counter(), 0
    while time.perf_counter() - start < 0.3 or iters < 3:
        for _ in range(10):
            a @ b
        iters += 10
        torch.cuda.synchronize()
    return 2.0 * n ** 3 * iters / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=10, help="steps not timed")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = Gpt2().cuda()
    params = sum(p.numel() for p in model.parameters())
    step_fn = torch.compile(model) if a.compile else model
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), fused=True)
    data = torch.randint(0, 50257, (a.steps + 1, a.batch, a.seq + 1), device="cuda")
    compile_s, start = 0.0, None
    t0 = time.perf_counter()
    for step in range(a.steps):
        if step == a.warmup:
            torch.cuda.synchronize()
            start = time.perf_counter()
            compile_s = start - t0
        x, y = data[step, :, :-1], data[step, :, 1:]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = step_fn(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
    torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    tokens = (a.steps - a.warmup) * a.batch * a.seq
    tok_s = tokens / elapsed
    n = params - 1024 * 768
    flops_per_token = 6.0 * n + 12.0 * 12 * 768 * a.seq
    peak = matmul_rate()
    out = {"mode": "compile" if a.compile else "eager", "tokens_per_s": tok_s,
           "mfu": tok_s * flops_per_token / peak, "peak_bf16_flops": peak,
           "warmup_s": compile_s, "params": params}
    emit(out, a.json)


if __name__ == "__main__":
    main()
