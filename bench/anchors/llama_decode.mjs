// Greedy decoding of a GGUF file (copyforge export --format gguf) on llama.cpp's CPU libraries
// (npm node-llama-cpp with @node-llama-cpp/linux-x64): every stream is a sequence of one context
// with the same prompt; the context batches the streams' pending tokens into one llama_decode
// call per step (node-llama-cpp's batching), as a llama.cpp server does with parallel slots.
// Usage: node llama_decode.mjs NODE_MODULES MODEL.gguf INPUT_JSON; prints one JSON object.
// INPUT_JSON: {"prompt_ids": [...], "new_tokens": N, "streams": [1, 16], "threads": T}
import {readFileSync} from "node:fs";
import {pathToFileURL} from "node:url";
import path from "node:path";

const [modules, gguf, inputPath] = process.argv.slice(2);
const input = JSON.parse(readFileSync(inputPath, "utf8"));
const {getLlama, LlamaLogLevel} = await import(
    pathToFileURL(path.join(modules, "node-llama-cpp", "dist", "index.js")).href);

const llama = await getLlama({gpu: false, build: "never", logLevel: LlamaLogLevel.error});
const model = await llama.loadModel({modelPath: gguf});

async function run(streams) {
  const per = input.prompt_ids.length + input.new_tokens + 8;
  const context = await model.createContext({
    contextSize: Math.max(256, streams * per), sequences: streams, threads: input.threads,
    batchSize: Math.max(512, streams * input.prompt_ids.length),
  });
  const sequences = Array.from({length: streams}, () => context.getSequence());
  const start = performance.now();
  const stamps = sequences.map(() => []);
  const ids = sequences.map(() => []);
  await Promise.all(sequences.map(async (sequence, s) => {
    for await (const token of sequence.evaluate(input.prompt_ids, {temperature: 0})) {
      ids[s].push(token);
      stamps[s].push(performance.now());
      if (ids[s].length >= input.new_tokens) break;
    }
  }));
  const end = performance.now();
  await context.dispose();
  const first = stamps[0];
  return {
    streams,
    prefill_ms: first[0] - start,
    ms_per_step: (first[first.length - 1] - first[0]) / (first.length - 1),
    tokens_per_s: (streams * input.new_tokens) / ((end - start) / 1000),
    first_stream: ids[0],
  };
}

const results = [];
await run(1);  // warm-up
for (const streams of input.streams) results.push(await run(streams));
process.stdout.write(JSON.stringify({engine: "llama.cpp", results}) + "\n");
await model.dispose();
await llama.dispose();
