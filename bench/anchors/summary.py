#!/usr/bin/env python3
"""The table of bench/serve_anchor.sh: each engine's decode time per token at one stream and
tokens/s at 16 streams, and ours against each anchor.

usage: summary.py WORK_DIR COPYFORGE_DTYPE...
"""
import json
import sys


def main():
    if len(sys.argv) < 3 or sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        return 2
    work, dtypes = sys.argv[1], sys.argv[2:]
    rows, floors = [], []
    for dtype in dtypes:
        with open("%s/copyforge-%s.json" % (work, dtype)) as f:
            levels = {l["concurrency"]: l for l in json.load(f)["levels"]}
        rows.append(("copyforge " + dtype, levels[1]["ms_per_token"],
                     levels[16]["tokens_per_s"], levels[16]["tpot_p99_ms"]))
        floors.append((dtype, levels[1]["ms_per_token"], levels[1].get("floor_ms"),
                       levels[1].get("best_pass_floor_ms"), levels[1].get("passes")))
    for name, path in (("llama.cpp f16", "llama-f16"), ("llama.cpp q8_0", "llama-q8_0"),
                       ("onnxruntime f32", "ort")):
        with open("%s/%s.json" % (work, path)) as f:
            results = {r["streams"]: r for r in json.load(f)["results"]}
        rows.append((name, results[1]["ms_per_step"], results[16]["tokens_per_s"],
                     results[16]["ms_per_step"]))
    print("  %-20s %14s %16s %18s" % ("engine", "1 stream ms/tok", "16 streams tok/s",
                                      "16: ms per step"))
    for name, ms, tps, step in rows:
        print("  %-20s %14.2f %16.1f %18.2f" % (name, ms, tps, step))
    print("  (copyforge: through gRPC, closed loop; its last column is the p99 of the requests'"
          " decode time per token)")
    for ours in rows[:len(dtypes)]:
        for anchor in rows[len(dtypes):]:
            print("  %s vs %s: %.2fx faster at 1 stream, %.2fx the tokens/s at 16" %
                  (ours[0], anchor[0], anchor[1] / ours[1], ours[2] / anchor[2]))
    for dtype, ms, floor, best, passes in floors:
        if floor:
            print("  copyforge %s at 1 stream: %.2fx its read floor (%.2f ms at the mean rate of %s"
                  " read passes taken between its requests); %.2fx at the fastest pass's (%.2f ms)"
                  % (dtype, ms / floor, floor, passes, ms / best, best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
