// Baseline for bench/tokenizer_bench: times tiktoken's "gpt2" encoding (npm, WebAssembly) on a
// file. usage: node tiktoken_bench.js FILE ITERATIONS
// Prints JSON: {"cold_s": first encode, "runs_s": [...], "tokens": n}.
const fs = require("fs");
const { get_encoding } = require("tiktoken");
const [file, iterations] = process.argv.slice(2);
const text = fs.readFileSync(file, "utf8");
const enc = get_encoding("gpt2");
let t0 = process.hrtime.bigint();
let tokens = enc.encode(text, "all").length;
const cold = Number(process.hrtime.bigint() - t0) / 1e9;
const runs = [];
for (let i = 0; i < Number(iterations); i++) {
  t0 = process.hrtime.bigint();
  tokens = enc.encode(text, "all").length;
  runs.push(Number(process.hrtime.bigint() - t0) / 1e9);
}
enc.free();
console.log(JSON.stringify({ cold_s: cold, runs_s: runs, tokens }));
