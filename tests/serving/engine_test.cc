// The continuous-batching engine in process: batched vs alone, seeds, stop sequences,
// cancellation, overload and argument errors.
#include "serving/engine.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "nlohmann/json.hpp"
#include "serving/json_schema.h"
#include "serving/token_mask.h"
#include "serving/watermark.h"
#include "tests/test_util.h"

namespace copyforge {
namespace {

// A random-weights tiny GPT-2 with the GPT-2 tokenizer.
class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::TempDir();
    testing::WriteTestFile(dir_->File("model.yaml"),
                           "n_layer: 2\nn_head: 2\nn_embd: 64\nn_positions: 128\n"
                           "vocab_size: 50257\ndropout: 0.0\n");
    auto r = testing::RunCommand(testing::Env("COPYFORGE_BIN") + " init-model --model-config " +
                                 dir_->File("model.yaml") + " --seed 3 --tokenizer " +
                                 testing::Env("COPYFORGE_GPT2_TOKENIZER") + " --out " +
                                 dir_->File("ckpt"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  static void TearDownTestSuite() { delete dir_; }

  std::unique_ptr<Engine> Make(EngineOptions o = {}) {
    o.threads = 1;
    auto ckpt = LoadCheckpoint(dir_->File("ckpt"));
    EXPECT_TRUE(ckpt.ok()) << ckpt.status();
    auto engine = Engine::Create(*std::move(ckpt), o);
    EXPECT_TRUE(engine.ok()) << engine.status();
    return *std::move(engine);
  }

  // A request's outcome, filled from the engine thread.
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    std::string text;
    std::vector<int32_t> ids;
    std::vector<float> logprobs;
    int64_t cached_prompt_tokens = 0;
    bool done = false;
    int chunks = 0;
    FinishReason reason = FinishReason::kNone;
    absl::Status status;
    void Wait() {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return done; });
    }
  };

  EngineRequest Request(Engine& e, const std::string& prompt, Result* out, int64_t max_new = 20) {
    EngineRequest r;
    r.prompt = e.Encode(prompt);
    r.max_new_tokens = max_new;
    r.ignore_eos = true;
    r.sampling.temperature = 0;
    r.on_chunk = [out](const EngineChunk& c) {
      std::lock_guard<std::mutex> lock(out->mu);
      out->text += c.text;
      out->ids.insert(out->ids.end(), c.ids.begin(), c.ids.end());
      out->logprobs.insert(out->logprobs.end(), c.logprobs.begin(), c.logprobs.end());
      ++out->chunks;
      if (c.done) {
        out->cached_prompt_tokens = c.cached_prompt_tokens;
        out->done = true;
        out->reason = c.reason;
        out->status = c.status;
        out->cv.notify_all();
      }
    };
    return r;
  }

  static testing::TempDir* dir_;
};
testing::TempDir* EngineTest::dir_ = nullptr;

const std::vector<std::string> kPrompts = {"Product: stainless steel water bottle",
                                           "Review (5 stars):",
                                           "The best pizza in town",
                                           "Blog: ten gifts for runners",
                                           "Brand: Acme. Category: Kitchen.",
                                           "Hello"};

TEST_F(EngineTest, GreedyOutputIsTheSameAloneAndInAFullBatch) {
  auto engine = Make();
  std::vector<std::vector<int32_t>> alone;
  for (const std::string& p : kPrompts) {
    Result r;
    ASSERT_TRUE(engine->Submit(Request(*engine, p, &r)).ok());
    r.Wait();
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.ids.size(), 20u);
    EXPECT_EQ(r.reason, FinishReason::kLength);
    alone.push_back(r.ids);
  }
  std::vector<std::unique_ptr<Result>> batched;
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    batched.push_back(std::make_unique<Result>());
    // Different lengths, so sequences join and leave the batch at different steps.
    ASSERT_TRUE(engine->Submit(Request(*engine, kPrompts[i], batched.back().get())).ok());
  }
  for (size_t i = 0; i < kPrompts.size(); ++i) {
    batched[i]->Wait();
    EXPECT_EQ(batched[i]->ids, alone[i]) << kPrompts[i];
  }
  EXPECT_GT(engine->stats().steps, 0);
}

// int8 weights: greedy output close to float32's on most prompts (a random tiny model has flat
// distributions, so not all), and the prefix cache bit-identical on int8 too.
TEST_F(EngineTest, Int8WeightsFollowFloat32AndKeepThePrefixCacheExact) {
  EngineOptions f, q;
  f.dtype = "float32";
  q.dtype = "int8";
  auto reference = Make(f), quantized = Make(q);
  int same_first = 0;
  for (const std::string& p : kPrompts) {
    Result a, b;
    ASSERT_TRUE(reference->Submit(Request(*reference, p, &a, 4)).ok());
    ASSERT_TRUE(quantized->Submit(Request(*quantized, p, &b, 4)).ok());
    a.Wait();
    b.Wait();
    ASSERT_TRUE(b.status.ok()) << b.status;
    same_first += a.ids[0] == b.ids[0];
  }
  EXPECT_GE(same_first, 4) << "of " << kPrompts.size();
  const std::string prompt = std::string(kPrompts[0]) + ". " + kPrompts[2] + ". " + kPrompts[3];
  Result first, again;
  ASSERT_TRUE(quantized->Submit(Request(*quantized, prompt, &first, 8)).ok());
  first.Wait();
  ASSERT_TRUE(quantized->Submit(Request(*quantized, prompt, &again, 8)).ok());
  again.Wait();
  EXPECT_GT(again.cached_prompt_tokens, 0);
  EXPECT_EQ(again.ids, first.ids);
}

// Requests built from one template share its prefix: with the prefix cache they copy its blocks
// and prefill only the rest, and every sampled token and log-probability is the same bit for bit
// as without the cache, alone or batched, in both dtypes.
TEST_F(EngineTest, PrefixCacheSkipsTheSharedPrefillWithBitIdenticalOutputs) {
  std::string prefix = "Write a product description for an online store. Keep it short, friendly";
  prefix += " and accurate; mention the materials, the size and who it is for. Product:";
  const std::vector<std::string> items = {" steel water bottle", " wool socks, 3 pairs",
                                          " cast iron pan", " kids' rain boots"};
  for (const char* dtype : {"float32", "bfloat16"}) {
    EngineOptions off, on;
    off.dtype = on.dtype = dtype;
    off.prefix_cache_tokens = 0;
    on.prefix_block_tokens = 8;
    auto plain = Make(off), cached = Make(on);
    const int64_t shared = static_cast<int64_t>(plain->Encode(prefix).size());
    ASSERT_GT(shared, 24);
    auto request = [&](Engine& e, const std::string& item, Result* r) {
      EngineRequest q = Request(e, prefix + item, r, 12);
      q.sampling.temperature = 0.9;
      q.sampling.seed = 7;
      q.logprobs = true;
      return q;
    };
    std::vector<std::unique_ptr<Result>> want;
    for (const std::string& item : items) {
      want.push_back(std::make_unique<Result>());
      ASSERT_TRUE(plain->Submit(request(*plain, item, want.back().get())).ok());
      want.back()->Wait();
      ASSERT_TRUE(want.back()->status.ok()) << want.back()->status;
      EXPECT_EQ(want.back()->cached_prompt_tokens, 0);
    }
    for (int round = 0; round < 2; ++round) {  // one at a time, then all batched
      std::vector<std::unique_ptr<Result>> got;
      for (size_t i = 0; i < items.size(); ++i) {
        got.push_back(std::make_unique<Result>());
        ASSERT_TRUE(cached->Submit(request(*cached, items[i], got.back().get())).ok());
        if (round == 0) got.back()->Wait();
      }
      for (size_t i = 0; i < items.size(); ++i) {
        got[i]->Wait();
        ASSERT_TRUE(got[i]->status.ok()) << got[i]->status;
        EXPECT_EQ(got[i]->ids, want[i]->ids) << dtype << " " << items[i];
        EXPECT_EQ(got[i]->logprobs, want[i]->logprobs) << dtype << " " << items[i];
        if (round > 0 || i > 0) {  // the first request filled the cache
          EXPECT_GE(got[i]->cached_prompt_tokens, shared / 8 * 8 - 8) << items[i];
          EXPECT_LE(got[i]->cached_prompt_tokens, shared + 8);
        }
      }
    }
    const EngineStats stats = cached->stats();
    EXPECT_GT(stats.prefix_hit_tokens, 0);
    EXPECT_GT(stats.prefix_cached_tokens, 0);
  }
}

TEST_F(EngineTest, EveryDtypeServesAndBatchesTheSame) {
  for (const char* dtype : {"float32", "bfloat16", "int8"}) {
    EngineOptions o;
    o.dtype = dtype;
    auto engine = Make(o);
    EXPECT_EQ(engine->options().dtype, dtype);
    std::vector<std::vector<int32_t>> alone;
    for (const std::string& p : kPrompts) {
      Result r;
      ASSERT_TRUE(engine->Submit(Request(*engine, p, &r, 12)).ok());
      r.Wait();
      ASSERT_TRUE(r.status.ok()) << r.status;
      alone.push_back(r.ids);
    }
    std::vector<std::unique_ptr<Result>> batched;
    for (const std::string& p : kPrompts) {
      batched.push_back(std::make_unique<Result>());
      ASSERT_TRUE(engine->Submit(Request(*engine, p, batched.back().get(), 12)).ok());
    }
    for (size_t i = 0; i < kPrompts.size(); ++i) {
      batched[i]->Wait();
      EXPECT_EQ(batched[i]->ids, alone[i]) << dtype << " " << kPrompts[i];
    }
  }
  EngineOptions bad;
  bad.dtype = "int4";
  auto ckpt = LoadCheckpoint(dir_->File("ckpt"));
  ASSERT_TRUE(ckpt.ok());
  auto engine = Engine::Create(*std::move(ckpt), bad);
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
}

// A KV pool larger than the memory budget is refused with its figures before it is allocated.
TEST_F(EngineTest, APoolBeyondTheMemoryBudgetIsRefused) {
  EngineOptions big;
  big.max_batch = 1 << 20;  // 2 layers x 128 positions x 64 wide x 2: 137 GB of float32 KV
  big.dtype = "float32";
  auto ckpt = LoadCheckpoint(dir_->File("ckpt"));
  ASSERT_TRUE(ckpt.ok());
  auto engine = Engine::Create(*std::move(ckpt), big);
  ASSERT_EQ(engine.status().code(), absl::StatusCode::kResourceExhausted) << engine.status();
  EXPECT_NE(engine.status().message().find("--max-memory-gb"), std::string_view::npos)
      << engine.status();
  EngineOptions small;
  small.max_memory_gb = 0.001;  // 1 MB: less than the weights
  ckpt = LoadCheckpoint(dir_->File("ckpt"));
  ASSERT_TRUE(ckpt.ok());
  engine = Engine::Create(*std::move(ckpt), small);
  EXPECT_EQ(engine.status().code(), absl::StatusCode::kResourceExhausted) << engine.status();
}

// A long prompt prefilled in chunks of 7 tokens, interleaved with another request's decoding,
// continues exactly as when it is prefilled at once.
TEST_F(EngineTest, ChunkedPrefillMatchesWholePrefill) {
  std::string prompt = "Write a product description.";
  for (int i = 0; i < 7; ++i) prompt += " Product: lamp, brass, 40 cm, warm light.";
  std::vector<int32_t> whole;
  for (int64_t chunk : {1000, 7}) {
    EngineOptions o;
    o.prefill_chunk = chunk;
    o.dtype = "float32";
    auto engine = Make(o);
    Result other, r;
    ASSERT_TRUE(engine->Submit(Request(*engine, "Hello", &other, 30)).ok());
    ASSERT_TRUE(engine->Submit(Request(*engine, prompt, &r, 12)).ok());
    r.Wait();
    other.Wait();
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(other.ids.size(), 30u);
    if (chunk == 1000) {
      whole = r.ids;
    } else {
      EXPECT_EQ(r.ids, whole);
    }
  }
}

TEST_F(EngineTest, SameSeedSameOutputWhateverElseIsBatched) {
  auto engine = Make();
  auto sampled = [&](uint64_t seed, bool crowd) {
    std::vector<std::unique_ptr<Result>> others;
    if (crowd) {
      for (const std::string& p : kPrompts) {
        others.push_back(std::make_unique<Result>());
        EngineRequest o = Request(*engine, p, others.back().get(), 30);
        o.sampling.temperature = 1.0;
        o.sampling.seed = 99;
        EXPECT_TRUE(engine->Submit(std::move(o)).ok());
      }
    }
    Result r;
    EngineRequest req = Request(*engine, "Review (4 stars):", &r, 25);
    req.sampling.temperature = 0.9;
    req.sampling.top_k = 50;
    req.sampling.top_p = 0.95;
    req.sampling.seed = seed;
    EXPECT_TRUE(engine->Submit(std::move(req)).ok());
    r.Wait();
    for (auto& o : others) o->Wait();
    return r.ids;
  };
  const auto a = sampled(7, false);
  EXPECT_EQ(a, sampled(7, true));
  EXPECT_NE(a, sampled(8, false));
}

TEST_F(EngineTest, StopSequenceAcrossTokenBoundaries) {
  auto engine = Make();
  Result full;
  ASSERT_TRUE(engine->Submit(Request(*engine, "Product: a lamp", &full, 30)).ok());
  full.Wait();
  ASSERT_GE(full.text.size(), 12u);
  // A stop string that starts inside one token and ends inside a later one.
  size_t at = 3;
  const std::string stop = full.text.substr(at, 7);
  at = full.text.find(stop);
  Result r;
  EngineRequest req = Request(*engine, "Product: a lamp", &r, 30);
  req.stop = {"never-appears", stop};
  ASSERT_TRUE(engine->Submit(std::move(req)).ok());
  r.Wait();
  EXPECT_EQ(r.reason, FinishReason::kStopSequence);
  EXPECT_EQ(r.text, full.text.substr(0, at));
}

TEST_F(EngineTest, CancelledRequestLeavesTheBatchAndFreesItsSlot) {
  EngineOptions o;
  o.max_batch = 2;
  auto engine = Make(o);
  Result r;
  std::atomic<bool> cancel{false};
  EngineRequest req = Request(*engine, "Blog:", &r, 120);
  req.cancelled = [&] { return cancel.load(); };
  ASSERT_TRUE(engine->Submit(std::move(req)).ok());
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard<std::mutex> lock(r.mu);
      if (r.chunks >= 3) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  cancel = true;
  r.Wait();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kCancelled) << r.status;
  EXPECT_LT(r.ids.size(), 120u);
  for (int i = 0; i < 100 && engine->stats().free_slots != 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(engine->stats().free_slots, 2);
  EXPECT_EQ(engine->stats().reserved_tokens, 0);
  Result after;
  ASSERT_TRUE(engine->Submit(Request(*engine, "Hello", &after, 5)).ok());
  after.Wait();
  EXPECT_TRUE(after.status.ok());
  // A deadline in the past ends a request the same way.
  Result late;
  EngineRequest expired = Request(*engine, "Hello", &late, 50);
  expired.deadline = std::chrono::steady_clock::now();
  ASSERT_TRUE(engine->Submit(std::move(expired)).ok());
  late.Wait();
  EXPECT_EQ(late.status.code(), absl::StatusCode::kDeadlineExceeded) << late.status;
}

TEST_F(EngineTest, FullQueueIsResourceExhaustedAtOnceAndTheEngineRecovers) {
  EngineOptions o;
  o.max_batch = 1;
  o.max_queue = 1;
  auto engine = Make(o);
  std::atomic<bool> cancel{false};
  Result a, b;
  EngineRequest ra = Request(*engine, "Blog:", &a, 120);
  ra.cancelled = [&] { return cancel.load(); };
  ASSERT_TRUE(engine->Submit(std::move(ra)).ok());
  for (int i = 0; i < 100 && engine->stats().running == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EngineRequest rb = Request(*engine, "Hello", &b, 120);
  rb.cancelled = [&] { return cancel.load(); };
  ASSERT_TRUE(engine->Submit(std::move(rb)).ok());  // waits in the queue
  Result c;
  const absl::Status full = engine->Submit(Request(*engine, "Hello", &c, 5));
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted) << full;
  EXPECT_NE(full.message().find("max_queue"), std::string_view::npos);
  cancel = true;
  a.Wait();
  b.Wait();
  Result d;
  ASSERT_TRUE(engine->Submit(Request(*engine, "Hello", &d, 5)).ok());
  d.Wait();
  EXPECT_TRUE(d.status.ok()) << d.status;
}

TEST_F(EngineTest, BadRequestsNameTheLimitOrField) {
  EngineOptions o;
  o.max_new_tokens = 50;
  o.max_prompt_tokens = 8;
  auto engine = Make(o);
  Result r;
  auto check = [&](EngineRequest req, const std::string& needle) {
    const absl::Status st = engine->Submit(std::move(req));
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find(needle), std::string_view::npos) << st;
  };
  EngineRequest a = Request(*engine, "Hello", &r);
  a.sampling.temperature = -1;
  check(std::move(a), "sampling.temperature");
  EngineRequest b = Request(*engine, "Hello", &r);
  b.sampling.top_p = 1.5;
  check(std::move(b), "sampling.top_p");
  check(Request(*engine, "Hello", &r, 51), "max_new_tokens 50");
  check(Request(*engine, "", &r), "prompt is empty");
  check(Request(*engine, "one two three four five six seven eight nine ten", &r),
        "max_prompt_tokens 8");
}

}  // namespace
}  // namespace copyforge

namespace copyforge {
namespace {

// Logits processors (a schema mask and the watermark) in the real engine: every sampled
// document validates, and each sequence's output is the same alone and in a full batch.
TEST_F(EngineTest, ProcessorsShapeEachRowTheSameAloneAndInABatch) {
  EngineOptions o;
  o.max_batch = 8;
  o.max_new_tokens = 300;
  auto engine = Make(o);
  auto vocabulary = std::make_shared<const VocabularyTrie>(engine->TokenTexts(), engine->EosId());
  auto schema = JsonSchema::Compile(
      R"({"type":"object","properties":{"title":{"type":"string","minLength":1,"maxLength":12},)"
      R"("stars":{"type":"integer","minimum":1,"maximum":5},)"
      R"("tags":{"type":"array","items":{"enum":["new","sale","eco"]},"maxItems":2}},)"
      R"("required":["title","stars"]})");
  ASSERT_TRUE(schema.ok()) << schema.status();
  auto masks = std::make_shared<SchemaMasks>(*schema, vocabulary);
  WatermarkConfig mark;
  mark.key = 99;
  auto request = [&](uint64_t seed, Result* out) {
    EngineRequest r = Request(*engine, "Listing:", out, 300);
    r.ignore_eos = false;
    r.sampling.temperature = 1;
    r.sampling.seed = seed;
    auto chain = std::make_shared<LogitsProcessorChain>();
    chain->Add(std::make_unique<SchemaConstraint>(masks));
    chain->Add(std::make_unique<WatermarkProcessor>(mark, r.prompt.back()));
    r.processor = chain;
    return r;
  };
  std::vector<std::unique_ptr<Result>> batched;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    batched.push_back(std::make_unique<Result>());
    ASSERT_TRUE(engine->Submit(request(seed, batched.back().get())).ok());
  }
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Result& r = *batched[seed];
    r.Wait();
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.reason, FinishReason::kEos) << r.text;
    EXPECT_TRUE((*schema)->Accepts(r.text)) << r.text;
    EXPECT_FALSE(nlohmann::json::parse(r.text, nullptr, false).is_discarded()) << r.text;
    Result alone;
    ASSERT_TRUE(engine->Submit(request(seed, &alone)).ok());
    alone.Wait();
    EXPECT_EQ(alone.ids, r.ids) << "seed " << seed;
  }
}

}  // namespace
}  // namespace copyforge
