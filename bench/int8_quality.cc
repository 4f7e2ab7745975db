// What weight-only int8 costs in quality: the same checkpoint in bfloat16 (float32 where the CPU
// lacks avx512_bf16) and in int8 (trainer/model/int8_linear.h) on the held-out human texts of a
// prepared dataset: perplexity of each and their ratio, and the share of greedy continuations
// (of each text's first tokens) that are identical, with the mean share of tokens before the
// first difference.
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>
#include <thread>

#include "trainer/checkpoint/checkpoint.h"
#include "trainer/common/cpu_features.h"
#include "trainer/data/eval_tasks.h"

namespace {

using namespace copyforge;

// Mean negative log-likelihood of ids[1..] given the ones before.
double Nll(Gpt2& model, const std::vector<int32_t>& ids) {
  const torch::Tensor t = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
  const torch::Tensor logits = model->forward(t.narrow(1, 0, t.size(1) - 1)).to(torch::kFloat);
  return torch::nn::functional::cross_entropy(logits[0], t[0].narrow(0, 1, t.size(1) - 1))
      .item<double>();
}

std::vector<int64_t> Greedy(Gpt2& model, std::vector<int64_t> ids, int64_t n) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < n; ++i) {
    const torch::Tensor logits = model->forward(torch::tensor(ids).unsqueeze(0));
    out.push_back(logits[0][-1].argmax().item<int64_t>());
    ids.push_back(out.back());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Perplexity and greedy agreement of int8 weights against bfloat16"};
  std::string checkpoint, data;
  int count = 60;
  int64_t prompt_tokens = 8, new_tokens = 32;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  app.add_option("--checkpoint", checkpoint)->required();
  app.add_option("--data", data, "A prepared dataset directory (its eval/tasks.jsonl)")->required();
  app.add_option("--count", count, "Held-out texts")->capture_default_str();
  app.add_option("--prompt-tokens", prompt_tokens, "Tokens of each text the greedy run starts from")
      ->capture_default_str();
  app.add_option("--new-tokens", new_tokens)->capture_default_str();
  app.add_option("--threads", threads)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  torch::set_num_threads(threads);
  torch::NoGradGuard no_grad;
  auto tasks = LoadEvalTasks(data + "/eval/tasks.jsonl");
  auto reference = LoadCheckpoint(checkpoint);
  auto quantized = LoadCheckpoint(checkpoint);
  if (!tasks.ok() || !reference.ok() || !quantized.ok()) {
    std::fprintf(stderr, "int8_quality: %s\n",
                 std::string((!tasks.ok()       ? tasks.status()
                              : !reference.ok() ? reference.status()
                                                : quantized.status())
                                 .message())
                     .c_str());
    return 1;
  }
  const auto type = CpuHasBf16() ? torch::kBFloat16 : torch::kFloat;
  reference->model->eval();
  reference->model->to(type);
  quantized->model->eval();
  quantized->model->PackInt8();
  quantized->model->to(type);
  const Tokenizer& tokenizer = *reference->tokenizer;
  double nll[2] = {0, 0};
  int64_t scored = 0;
  int texts = 0, same = 0;
  double before_difference = 0;
  for (const EvalTask& task : *tasks) {
    if (texts >= count) break;
    std::vector<int32_t> ids = {tokenizer.eot_id()};
    const std::vector<int32_t> text = tokenizer.Encode(task.reference);
    ids.insert(ids.end(), text.begin(), text.end());
    if (static_cast<int64_t>(ids.size()) <= prompt_tokens + 1) continue;
    ++texts;
    const auto n = static_cast<double>(ids.size() - 1);
    nll[0] += Nll(reference->model, ids) * n;
    nll[1] += Nll(quantized->model, ids) * n;
    scored += static_cast<int64_t>(ids.size() - 1);
    const std::vector<int64_t> prompt(ids.begin(), ids.begin() + prompt_tokens);
    const auto a = Greedy(reference->model, prompt, new_tokens);
    const auto b = Greedy(quantized->model, prompt, new_tokens);
    same += a == b;
    size_t k = 0;
    while (k < a.size() && a[k] == b[k]) ++k;
    before_difference += static_cast<double>(k) / static_cast<double>(a.size());
  }
  if (texts == 0) {
    std::fprintf(stderr, "int8_quality: no held-out text longer than %lld tokens\n",
                 static_cast<long long>(prompt_tokens + 1));
    return 1;
  }
  const double ppl_ref = std::exp(nll[0] / scored), ppl_q = std::exp(nll[1] / scored);
  std::printf(
      "int8_quality: %s, %d held-out texts (%lld tokens), %s activations, int8 kernel: %s, %d "
      "threads\n",
      checkpoint.c_str(), texts, static_cast<long long>(scored),
      type == torch::kBFloat16 ? "bfloat16" : "float32",
      UseVnniKernels() ? "AVX-512 VNNI (16-bit fixed-point rows)" : "widening to float32", threads);
  std::printf("  perplexity: %s %.3f, int8 %.3f (%+.2f%%)\n",
              type == torch::kBFloat16 ? "bfloat16" : "float32", ppl_ref, ppl_q,
              100.0 * (ppl_q / ppl_ref - 1));
  std::printf(
      "  greedy agreement over %lld new tokens: %d/%d identical (%.0f%%); mean share before the "
      "first difference %.0f%%\n",
      static_cast<long long>(new_tokens), same, texts, 100.0 * same / texts,
      100.0 * before_difference / texts);
  return 0;
}
