// The per-request bounds, as a pure check of GenerateRequest / TokenizeRequest.
#include "serving/request_limits.h"

#include <gtest/gtest.h>

#include <cmath>
#include <string>

namespace copyforge {
namespace {

void ExpectRefused(const v1::GenerateRequest& r, const std::string& named, int slots = 16) {
  const absl::Status st = CheckGenerateRequest(r, RequestLimits{}, slots);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << r.DebugString();
  EXPECT_NE(st.message().find(named), std::string::npos) << st;
}

TEST(RequestLimits, OrdinaryRequestsPass) {
  v1::GenerateRequest r;
  r.set_prompt("Product: kettle. Description:");
  r.mutable_stopping()->add_stop("\n\n");
  r.mutable_sampling()->set_temperature(0.8f);
  r.mutable_sampling()->set_top_p(0.95f);
  r.set_num_return_sequences(4);
  EXPECT_TRUE(CheckGenerateRequest(r, RequestLimits{}, 16).ok());
}

TEST(RequestLimits, EachBoundIsNamed) {
  v1::GenerateRequest big;
  big.set_prompt(std::string((256 << 10) + 1, 'a'));
  ExpectRefused(big, "the prompt has 262145 bytes, over the limit 262144");
  v1::GenerateRequest features;
  for (int i = 0; i < 300; ++i) {
    features.mutable_product_description()->add_features(std::string(1000, 'f'));
  }
  ExpectRefused(features, "the prompt has");
  v1::GenerateRequest stops;
  stops.set_prompt("x");
  for (int i = 0; i < 17; ++i) stops.mutable_stopping()->add_stop("s");
  ExpectRefused(stops, "stopping.stop has 17 sequences, over the limit 16");
  v1::GenerateRequest long_stop;
  long_stop.set_prompt("x");
  long_stop.mutable_stopping()->add_stop(std::string(257, 's'));
  ExpectRefused(long_stop, "stopping.stop[0] has 257 bytes");
  v1::GenerateRequest empty_stop;
  empty_stop.set_prompt("x");
  empty_stop.mutable_stopping()->add_stop("");
  ExpectRefused(empty_stop, "stopping.stop[0] is empty");
  v1::GenerateRequest id;
  id.set_prompt("x");
  id.set_request_id(std::string(300, 'i'));
  ExpectRefused(id, "request_id has 300 bytes");
  v1::GenerateRequest many;
  many.set_prompt("x");
  many.set_num_return_sequences(5);
  ExpectRefused(
      many,
      "num_return_sequences has 5 sequences (at most the server's KV slots), over the limit 4",
      /*slots=*/4);
  for (float bad : {INFINITY, NAN, -1.0f, 1000.0f}) {
    v1::GenerateRequest t;
    t.set_prompt("x");
    t.mutable_sampling()->set_temperature(bad);
    ExpectRefused(t, "sampling.temperature must be a finite number");
  }
  v1::GenerateRequest p;
  p.set_prompt("x");
  p.mutable_sampling()->set_top_p(NAN);
  ExpectRefused(p, "sampling.top_p");
  v1::GenerateRequest k;
  k.set_prompt("x");
  k.mutable_sampling()->set_top_k(-3);
  ExpectRefused(k, "sampling.top_k");
  v1::TokenizeRequest tok;
  tok.set_text(std::string((256 << 10) + 1, 't'));
  EXPECT_EQ(CheckTokenizeRequest(tok, RequestLimits{}).code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace copyforge
