// A small GPT-2 configuration shared by the model tests.
#ifndef COPYFORGE_TESTS_TRAINER_MODEL_TEST_UTIL_H_
#define COPYFORGE_TESTS_TRAINER_MODEL_TEST_UTIL_H_

#include "trainer/model/gpt2.h"

namespace copyforge::testing {

inline Gpt2Config TinyConfig() {
  Gpt2Config c;
  c.n_layer = 2;
  c.n_head = 2;
  c.n_embd = 32;
  c.n_positions = 64;
  c.vocab_size = 101;
  c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = 0.0;
  return c;
}

inline Gpt2 TinyModel(uint64_t seed = 1) {
  Gpt2 model(TinyConfig());
  model->InitWeights(seed);
  model->eval();
  return model;
}

inline torch::Tensor RandomIds(int64_t batch, int64_t len, int64_t vocab, uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  return torch::randint(vocab, {batch, len}, gen, torch::kLong);
}

}  // namespace copyforge::testing

#endif  // COPYFORGE_TESTS_TRAINER_MODEL_TEST_UTIL_H_
