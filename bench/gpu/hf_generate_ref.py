"""Serving reference for the GPU check: Hugging Face transformers' generate (with its KV cache)
on a checkpoint directory, bf16 on the GPU. Reports batch-1 greedy decode time per token (the
difference between generating N and 1 tokens, over N - 1) and the throughput of 16 sequences
generated together.

  python3 bench/gpu/hf_generate_ref.py --checkpoint DIR [--new-tokens 128] [--json OUT]
"""
import argparse
import time

import torch
from transformers import GPT2LMHeadModel

from common import emit


def timed(model, ids, new):
    torch.cuda.synchronize()
    start = time.perf_counter()
    model.generate(ids, max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True,
                   pad_token_id=0)
    torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--streams", type=int, default=16)
    ap.add_argument("--json")
    a = ap.parse_args()
    model = GPT2LMHeadModel.from_pretrained(a.checkpoint).to(torch.bfloat16).cuda().eval()
    prompt = torch.randint(0, 50257, (1, 16), device="cuda", generator=None)
    with torch.inference_mode():
        timed(model, prompt, 8)  # warm-up
        one = min(timed(model, prompt, 1) for _ in range(3))
        full = min(timed(model, prompt, a.new_tokens) for _ in range(2))
        batch = prompt.repeat(a.streams, 1)
        timed(model, batch, 8)
        many = min(timed(model, batch, a.new_tokens) for _ in range(2))
    out = {"ms_per_token_batch1": (full - one) / (a.new_tokens - 1) * 1e3,
           "tokens_per_s_batch1": a.new_tokens / full,
           "tokens_per_s_streams": a.streams * a.new_tokens / many, "streams": a.streams}
    emit(out, a.json)


if __name__ == "__main__":
    main()
