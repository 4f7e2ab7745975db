#!/usr/bin/python3
"""Eager-PyTorch baseline for bench/train_bench: the same GPT-2, optimizer and shapes.

usage: train_baseline.py N_LAYER N_HEAD N_EMBD N_POSITIONS VOCAB SEQ BATCH STEPS THREADS PRECISION DROPOUT
Prints JSON {"tokens_per_s": ..., "losses": [...]} for the timed steps.
"""
import json
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, h, p, drop):
        super().__init__()
        self.h = h
        self.attn_drop, self.resid_drop = nn.Dropout(drop), nn.Dropout(drop)
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.tril(torch.ones(p, p, dtype=torch.bool)))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = [t.view(B, T, self.h, C // self.h).transpose(1, 2) for t in (q, k, v)]
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.h))
        att = self.attn_drop(att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(-1))
        x = x + self.resid_drop(self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C)))
        return x + self.resid_drop(self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self, L, H, D, P, V, drop):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, D), nn.Embedding(P, D)
        self.drop = nn.Dropout(drop)
        self.h = nn.ModuleList([Block(D, H, P, drop) for _ in range(L)])
        self.ln_f = nn.LayerNorm(D)
        for n, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02 / (math.sqrt(2 * L) if n.endswith("proj.weight") else 1.0))
            elif n.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        x = self.drop(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])))
        for b in self.h:
            x = b(x)
        return self.ln_f(x) @ self.wte.weight.t()


def main():
    L, H, D, P, V, T, B, steps, threads = map(int, sys.argv[1:10])
    precision, drop = sys.argv[10], float(sys.argv[11])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = GPT(L, H, D, P, V, drop)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
    data = torch.randint(0, V, (steps + 2, B, T + 1))

    def step(i):
        x, y = data[i, :, :-1], data[i, :, 1:]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for i in range(2):  # warm-up
        step(i)
    start = time.time()
    losses = [step(2 + i) for i in range(steps)]
    elapsed = time.time() - start
    print(json.dumps({"tokens_per_s": steps * B * T / elapsed, "losses": losses}))


if __name__ == "__main__":
    main()
