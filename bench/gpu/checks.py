"""Python halves of scripts/gpu_check.sh: each subcommand prints one JSON object with its figures
and "ok", and exits 1 when the check fails.

  curves A/metrics.jsonl B/metrics.jsonl --max-abs X [--final-rel Y]
  interop --bin copyforge --tokenizer DIR --checkpoint DIR --text FILE --work DIR
  tensorboard RUN_DIR
  speed OURS/metrics.jsonl EAGER.json COMPILE.json --batch B --seq T
  serving SERVE_LOAD.json HF.json
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

from common import load_last_json

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


def save_hf(model, directory):
    try:  # transformers 4.x takes the flag; 5.x always writes safetensors
        model.save_pretrained(directory, safe_serialization=True)
    except TypeError:
        model.save_pretrained(directory)


def loss_pairs(a, ids):
    """[ours, Hugging Face's] loss on the same tokens, for each direction and device."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.backends.cuda.matmul.allow_tf32 = False
    pairs = {}
    # Ours -> Hugging Face, on the CPU (float32 both sides) and on the GPU (TF32 on our side).
    hf = GPT2LMHeadModel.from_pretrained(a.checkpoint).eval()
    pairs["ours_to_hf_cpu"] = [ours_loss(a, a.checkpoint, "cpu"), window_loss(hf, ids, "cpu")]
    if torch.cuda.is_available():
        hf = hf.cuda()
        pairs["ours_to_hf_cuda"] = [ours_loss(a, a.checkpoint, "cuda"),
                                    window_loss(hf, ids, "cuda")]
    # Hugging Face's save_pretrained -> ours.
    torch.manual_seed(0)
    theirs = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=128)).eval()
    hf_dir = os.path.join(a.work, "hf_saved")
    save_hf(theirs, hf_dir)
    if not os.path.exists(os.path.join(hf_dir, "model.safetensors")):
        raise RuntimeError(f"save_pretrained wrote no model.safetensors into {hf_dir}")
    for f in ("vocab.json", "merges.txt"):
        shutil.copy(os.path.join(a.tokenizer, f), hf_dir)
    pairs["hf_to_ours_cpu"] = [ours_loss(a, hf_dir, "cpu"), window_loss(theirs, ids, "cpu")]
    return pairs


def tiktoken_mismatches(a):
    """Indices of TOKENIZER_STRINGS where tiktoken's GPT-2 encoding (built from the same files,
    no download) and ours differ."""
    import tiktoken
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks
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
    return mismatched


def interop(a):
    tolerance = {"ours_to_hf_cpu": 1e-4, "ours_to_hf_cuda": 2e-3, "hf_to_ours_cpu": 1e-4}
    result = {"tolerance": tolerance, "errors": []}
    ids = json.loads(run([a.bin, "tokenize", "--tokenizer", a.tokenizer, "--input", a.text]))
    pairs = {}
    try:
        pairs = loss_pairs(a, ids)
    except Exception as e:  # reported, and the check fails
        result["errors"].append(f"Hugging Face: {type(e).__name__}: {e}")
    result["losses"] = pairs
    result["abs_loss_diff"] = {k: abs(v[0] - v[1]) for k, v in pairs.items()}
    try:
        result["tiktoken_mismatched"] = tiktoken_mismatches(a)
    except Exception as e:
        result["errors"].append(f"tiktoken: {type(e).__name__}: {e}")
    result["tiktoken_strings"] = len(TOKENIZER_STRINGS)
    diffs = result["abs_loss_diff"]
    result["ok"] = (not result["errors"] and result.get("tiktoken_mismatched") == [] and
                    all(diffs.get(k, float("inf")) <= tolerance[k] for k in tolerance))
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


def speed(a):
    """Steady-state tokens/s of our run (steps 11 to the last) and its MFU, against the refs."""
    rows = []
    with open(a.ours) as f:
        rows = [json.loads(line) for line in f if '"loss"' in line]
    out = {}
    if len(rows) > 10:
        first, last = rows[9], rows[-1]
        tok_s = ((last["step"] - first["step"]) * a.batch * a.seq /
                 (last["elapsed_s"] - first["elapsed_s"]))
        # The logged MFU is the cumulative tokens/s over the measured peak: the same ratio.
        out = {"ours_tokens_per_s": tok_s, "ours_mfu": tok_s * last["mfu"] / last["tokens_per_s"]}
    eager, comp = load_last_json(a.eager), load_last_json(a.compile)
    for name, ref in (("eager", eager), ("compile", comp)):
        out[f"{name}_tokens_per_s"] = ref.get("tokens_per_s")
        out[f"{name}_mfu"] = ref.get("mfu")
        if out.get("ours_tokens_per_s") and ref.get("tokens_per_s"):
            out[f"ours_over_{name}"] = out["ours_tokens_per_s"] / ref["tokens_per_s"]
    out["goal_at_least_eager"] = out.get("ours_over_eager", 0) >= 1.0
    out["ok"] = "ours_tokens_per_s" in out
    finish(out)


def serving(a):
    ours, hf = load_last_json(a.ours), load_last_json(a.hf)
    levels = {level["concurrency"]: level for level in ours.get("levels", [])}
    out = {"dtype": ours.get("dtype"), "failures": ours.get("failures"),
           "ours_ms_per_token_batch1": levels.get(1, {}).get("ms_per_token"),
           "ours_tokens_per_s_16": levels.get(16, {}).get("tokens_per_s"),
           "hf_ms_per_token_batch1": hf.get("ms_per_token_batch1"),
           "hf_tokens_per_s_16": hf.get("tokens_per_s_streams")}
    if out["ours_ms_per_token_batch1"] and out["hf_ms_per_token_batch1"]:
        out["hf_over_ours_ms_per_token"] = (out["hf_ms_per_token_batch1"] /
                                            out["ours_ms_per_token_batch1"])
    if out["ours_tokens_per_s_16"] and out["hf_tokens_per_s_16"]:
        out["ours_over_hf_16_streams"] = out["ours_tokens_per_s_16"] / out["hf_tokens_per_s_16"]
    out["ok"] = bool(levels) and ours.get("failures") == 0
    finish(out)


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
    s = sub.add_parser("speed")
    s.add_argument("ours")
    s.add_argument("eager")
    s.add_argument("compile")
    s.add_argument("--batch", type=int, required=True)
    s.add_argument("--seq", type=int, required=True)
    v = sub.add_parser("serving")
    v.add_argument("ours")
    v.add_argument("hf")
    a = ap.parse_args()
    {"curves": curves, "interop": interop, "tensorboard": tensorboard, "speed": speed,
     "serving": serving}[a.cmd](a)


if __name__ == "__main__":
    main()
