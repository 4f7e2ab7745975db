// Greedy decoding of an ONNX GPT-2 decoder with a KV cache (bench/anchors/onnx_export.py) on
// onnxruntime's CPU execution provider (npm onnxruntime-node): every stream gets the same prompt
// and all streams go through each step together as one batch.
// Usage: node ort_decode.mjs NODE_MODULES MODEL.onnx INPUT_JSON; prints one JSON object.
// INPUT_JSON: {"prompt_ids": [...], "new_tokens": N, "streams": [1, 16], "threads": T,
//              "layers": L, "heads": H, "head_dim": D}
import {readFileSync} from "node:fs";
import {createRequire} from "node:module";
import path from "node:path";

const [modules, modelPath, inputPath] = process.argv.slice(2);
const input = JSON.parse(readFileSync(inputPath, "utf8"));
const ort = createRequire(path.join(modules, "x.js"))("onnxruntime-node");

const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ["cpu"],
  intraOpNumThreads: input.threads,
  interOpNumThreads: 1,
  graphOptimizationLevel: "all",
});
const {layers: L, heads: H, head_dim: D} = input;

function argmaxRows(logits, rows) {
  const vocab = logits.dims[1], data = logits.data, out = [];
  for (let r = 0; r < rows; ++r) {
    let best = 0;
    for (let i = 1; i < vocab; ++i) if (data[r * vocab + i] > data[r * vocab + best]) best = i;
    out.push(best);
  }
  return out;
}

async function run(streams) {
  const P = input.prompt_ids.length;
  const feeds = {};
  const ids = new BigInt64Array(streams * P);
  for (let s = 0; s < streams; ++s) input.prompt_ids.forEach((id, i) => (ids[s * P + i] = BigInt(id)));
  feeds.input_ids = new ort.Tensor("int64", ids, [streams, P]);
  for (let l = 0; l < L; ++l) {
    for (const kv of ["key", "value"]) {
      feeds[`past_${kv}_${l}`] = new ort.Tensor("float32", new Float32Array(0), [streams, H, 0, D]);
    }
  }
  const start = performance.now();
  let out = await session.run(feeds);
  const prefill = performance.now();
  const generated = [argmaxRows(out.logits, streams)];
  while (generated.length < input.new_tokens) {
    const next = new BigInt64Array(streams);
    generated[generated.length - 1].forEach((id, s) => (next[s] = BigInt(id)));
    const step = {input_ids: new ort.Tensor("int64", next, [streams, 1])};
    for (let l = 0; l < L; ++l) {
      for (const kv of ["key", "value"]) step[`past_${kv}_${l}`] = out[`present_${kv}_${l}`];
    }
    out = await session.run(step);
    generated.push(argmaxRows(out.logits, streams));
  }
  const end = performance.now();
  return {
    streams,
    prefill_ms: prefill - start,
    ms_per_step: (end - prefill) / (input.new_tokens - 1),
    tokens_per_s: (streams * input.new_tokens) / ((end - start) / 1000),
    first_stream: generated.map((row) => row[0]),
  };
}

const results = [];
await run(1);  // warm-up: the first run plans the graph's memory
for (const streams of input.streams) results.push(await run(streams));
process.stdout.write(JSON.stringify({engine: "onnxruntime", version: ort.env.versions?.common ?? "",
                                     results}) + "\n");
