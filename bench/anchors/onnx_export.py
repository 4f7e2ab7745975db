#!/usr/bin/python3
"""Exports a copyforge checkpoint (Hugging Face GPT-2 safetensors) to an ONNX decoder with a KV
cache, the way GPT-2 is usually run on onnxruntime: inputs input_ids [batch, new] and, per layer,
past keys and values [batch, heads, past, head_dim]; outputs the logits of each row's last
position [batch, vocab] and the present keys and values (past + new positions). float32.

usage: onnx_export.py CHECKPOINT_DIR OUT.onnx   (Debian's python3-torch; no other package)
"""
import json
import math
import struct
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    with open(path, "rb") as f:
        header_len = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(header_len))
        data = f.read()
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=dtypes[info["dtype"]])
        tensors[name] = t.reshape(info["shape"]).float()
    return tensors


class Decoder(nn.Module):
    def __init__(self, config, w):
        super().__init__()
        self.L, self.H, self.C = config["n_layer"], config["n_head"], config["n_embd"]
        self.eps = config.get("layer_norm_epsilon", 1e-5)
        self.w = {k.replace("transformer.", ""): nn.Parameter(v, requires_grad=False)
                  for k, v in w.items()}
        for i, (k, v) in enumerate(self.w.items()):
            self.register_parameter("p%d" % i, v)

    def ln(self, x, name):
        return F.layer_norm(x, (self.C,), self.w[name + ".weight"], self.w[name + ".bias"],
                            self.eps)

    def conv1d(self, x, name):  # Hugging Face Conv1D: weight [in, out]
        return torch.addmm(self.w[name + ".bias"], x.reshape(-1, x.shape[-1]),
                           self.w[name + ".weight"]).reshape(x.shape[0], x.shape[1], -1)

    def forward(self, input_ids, *past):
        B, T = input_ids.shape
        P = past[0].shape[2]
        positions = torch.arange(T, dtype=torch.long) + P
        x = self.w["wte.weight"][input_ids] + self.w["wpe.weight"][positions].unsqueeze(0)
        C, D = self.C, self.C // self.H
        # Query i (absolute position P + i) sees keys 0 .. P + i.
        keys_at = torch.arange(P + T, dtype=torch.long).unsqueeze(0)
        allowed = keys_at <= positions.unsqueeze(1)
        presents = []
        for l in range(self.L):
            p = "h.%d." % l
            q, k, v = self.conv1d(self.ln(x, p + "ln_1"), p + "attn.c_attn").split(C, dim=2)
            q, k, v = [t.reshape(B, T, self.H, D).transpose(1, 2) for t in (q, k, v)]
            k = torch.cat([past[2 * l], k], dim=2)
            v = torch.cat([past[2 * l + 1], v], dim=2)
            presents += [k, v]
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
            att = att.masked_fill(~allowed, float("-inf")).softmax(-1)
            y = (att @ v).transpose(1, 2).reshape(B, T, C)
            x = x + self.conv1d(y, p + "attn.c_proj")
            h = F.gelu(self.conv1d(self.ln(x, p + "ln_2"), p + "mlp.c_fc"), approximate="tanh")
            x = x + self.conv1d(h, p + "mlp.c_proj")
        last = self.ln(x[:, -1, :], "ln_f")
        return (last @ self.w["wte.weight"].t(), *presents)


def main():
    if len(sys.argv) != 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(sys.argv) == 2 else 2
    ckpt, out = sys.argv[1], sys.argv[2]
    with open(ckpt + "/config.json") as f:
        config = json.load(f)
    model = Decoder(config, load_safetensors(ckpt + "/model.safetensors")).eval()
    L, H = config["n_layer"], config["n_head"]
    D = config["n_embd"] // H
    ids = torch.zeros((2, 3), dtype=torch.long)
    past = [torch.zeros((2, H, 4, D)) for _ in range(2 * L)]
    names_past = ["past_%s_%d" % (kv, l) for l in range(L) for kv in ("key", "value")]
    names_present = ["present_%s_%d" % (kv, l) for l in range(L) for kv in ("key", "value")]
    axes = {"input_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"}}
    for n in names_past:
        axes[n] = {0: "batch", 2: "past"}
    for n in names_present:
        axes[n] = {0: "batch", 2: "total"}
    with torch.no_grad():
        torch.onnx.export(model, (ids, *past), out, input_names=["input_ids"] + names_past,
                          output_names=["logits"] + names_present, dynamic_axes=axes,
                          opset_version=14, do_constant_folding=True)
    print("onnx_export: wrote %s (%d layers, %d heads)" % (out, L, H))
    return 0


if __name__ == "__main__":
    sys.exit(main())
