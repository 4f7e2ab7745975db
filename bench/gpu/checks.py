"""Python halves of scripts/gpu_check.sh: each subcommand prints one JSON object with its figures
and "ok", and exits 1 when the check fails.

  curves A/metrics.jsonl B/metrics.jsonl --max-abs X [--final-rel Y]
  interop --bin copyforge --tokenizer DIR --checkpoint DIR --text FILE --work DIR
  tensorboard RUN_DIR
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

# Strings the tokenizer must split exactly as tiktoken's GPT-2 encoding does.
TOKENIZER_STRINGS = [
    "Great blender, 5 stars! Would buy again.",
    "  leading spaces, trailing tabs\t\t and\nnew lines\r\n",
    "Prix: 49,99 € — très bon rapport qualité/prix. 東京 😀 naïve café",
    "I've it's we'll they're don't DON'T 1234567 3.14159 e-mail@example.com",
    "<|endoftext|> is text here, and ~~~!!!??? ... \u00a0\u2028 mixed",
]
GPT2_PATTERN = (r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def finish(result):
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


def losses(path):
    out = []
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "loss" in j and "step" in j:
                out.append(j["loss"])
    return out


def curves(a):
    x, y = losses(a.first), losses(a.second)
    n = min(len(x), len(y))
    worst = max((abs(p - q) for p, q in zip(x, y)), default=float("inf"))
    final_rel = abs(x[-1] - y[-1]) / abs(y[-1]) if n else float("inf")
    ok = n > 0 and len(x) == len(y) and worst <= a.max_abs and final_rel <= a.final_rel
    if a.decreasing:
        ok = ok and x[-1] < x[0] and y[-1] < y[0]
    finish({"ok": ok, "steps": n, "max_abs_diff": worst, "final_rel_diff": final_rel,
            "first": x[:1] + x[-1:], "second": y[:1] + y[-1:]})


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def window_loss(model, ids, device):
    import torch
    import torch.nn.functional as F
    window = model.config.n_positions
    total, done, predicted = 0.0, 0, len(ids) - 1
    with torch.no_grad():
        while done < predicted:
            n = min(window, predicted - done)
            x = torch.tensor([ids[done:done + n]], device=device)
            y = torch.tensor([ids[done + 1:done + n + 1]], device=device)
            logits = model(x).logits.float()
            total += F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1),
                                     reduction="sum").item()
            done += n
    return total / predicted


def ours_loss(a, checkpoint, device):
    out = run([a.bin, "eval", "--checkpoint", checkpoint, "--text-file", a.text, "--device",
               device, "--batch-size", "1"])
    return json.loads(out.strip().splitlines()[-1])["loss"]


def interop(a):
    import tiktoken
    import torch
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.backends.cuda.matmul.allow_tf32 = False
    result = {}
    ids = json.loads(run([a.bin, "tokenize", "--tokenizer", a.tokenizer, "--input", a.text]))
    # Ours -> Hugging Face, on the CPU (float32 both sides) and on the GPU (TF32 on our side).
    hf = GPT2LMHeadModel.from_pretrained(a.checkpoint).eval()
    result["ours_to_hf_cpu"] = [ours_loss(a, a.checkpoint, "cpu"), window_loss(hf, ids, "cpu")]
    hf = hf.cuda()
    result["ours_to_hf_cuda"] = [ours_loss(a, a.checkpoint, "cuda"), window_loss(hf, ids, "cuda")]
    # Hugging Face's save_pretrained -> ours.
    torch.manual_seed(0)
    theirs = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=128)).eval()
    hf_dir = os.path.join(a.work, "hf_saved")
    theirs.save_pretrained(hf_dir, safe_serialization=True)
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(a.tokenizer, f), hf_dir)
    result["hf_to_ours_cpu"] = [ours_loss(a, hf_dir, "cpu"), window_loss(theirs, ids, "cpu")]
    # tiktoken's GPT-2 encoding, built from the same vocabulary files (no download).
    ranks = data_gym_to_mergeable_bpe_ranks(os.path.join(a.tokenizer, "merges.txt"),
                                            os.path.join(a.tokenizer, "vocab.json"))
    enc = tiktoken.Encoding("gpt2-local", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                            special_tokens={"<|endoftext|>": 50256})
    mismatched = []
    for i, text in enumerate(TOKENIZER_STRINGS):
        path = os.path.join(a.work, f"tok{i}.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        ours = json.loads(run([a.bin, "tokenize", "--tokenizer", a.tokenizer, "--input", path]))
        if ours != enc.encode(text, allowed_special="all"):
            mismatched.append(i)
    result["tiktoken_strings"] = len(TOKENIZER_STRINGS)
    result["tiktoken_mismatched"] = mismatched
    diffs = {k: abs(v[0] - v[1]) for k, v in result.items() if isinstance(v, list) and len(v) == 2
             and isinstance(v[0], float)}
    tolerance = {"ours_to_hf_cpu": 1e-4, "ours_to_hf_cuda": 2e-3, "hf_to_ours_cpu": 1e-4}
    result["abs_loss_diff"] = diffs
    result["tolerance"] = tolerance
    result["ok"] = not mismatched and all(diffs[k] <= tolerance[k] for k in tolerance)
    finish(result)


def tensorboard(a):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(a.run_dir)
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    ok = "train/loss" in tags
    read = [e.value for e in acc.Scalars("train/loss")] if ok else []
    written = losses(os.path.join(a.run_dir, "metrics.jsonl"))
    worst = max((abs(p - q) / max(1e-9, abs(q)) for p, q in zip(read, written)), default=1.0)
    ok = ok and len(read) == len(written) and worst < 1e-6
    finish({"ok": ok, "tags": sorted(tags), "loss_scalars": len(read), "max_rel_diff": worst})


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("curves")
    c.add_argument("first")
    c.add_argument("second")
    c.add_argument("--max-abs", type=float, required=True)
    c.add_argument("--final-rel", type=float, default=1.0)
    c.add_argument("--decreasing", action="store_true")
    i = sub.add_parser("interop")
    for flag in ("--bin", "--tokenizer", "--checkpoint", "--text", "--work"):
        i.add_argument(flag, required=True)
    t = sub.add_parser("tensorboard")
    t.add_argument("run_dir")
    a = ap.parse_args()
    {"curves": curves, "interop": interop, "tensorboard": tensorboard}[a.cmd](a)


if __name__ == "__main__":
    main()
