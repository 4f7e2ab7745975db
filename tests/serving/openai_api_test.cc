// The OpenAI completions protocol on our request types: parsing, field errors, responses.
#include "serving/openai_api.h"

#include <gtest/gtest.h>

namespace copyforge {
namespace {

CompletionRequest Parse(const std::string& body) {
  ApiError error;
  auto r = ParseCompletionRequest(body, "copyforge", &error);
  EXPECT_TRUE(r.ok()) << r.status() << " " << error.param;
  return r.ok() ? *r : CompletionRequest{};
}

ApiError Fails(const std::string& body) {
  ApiError error;
  EXPECT_FALSE(ParseCompletionRequest(body, "copyforge", &error).ok()) << body;
  return error;
}

TEST(OpenAiApi, PromptsSamplingAndStopBecomeGenerateRequests) {
  auto r = Parse(R"({"model":"copyforge","prompt":["a","b"],"max_tokens":7,"temperature":0.5,
                    "top_p":0.9,"top_k":20,"n":3,"stop":"\n","seed":11,"logprobs":2,"echo":true,
                    "stream":true,"stream_options":{"include_usage":true},"user":"u1",
                    "presence_penalty":0,"frequency_penalty":0})");
  ASSERT_EQ(r.requests.size(), 2u);
  EXPECT_EQ(r.requests[1].prompt(), "b");
  const v1::GenerateRequest& q = r.requests[0];
  EXPECT_EQ(q.stopping().max_new_tokens(), 7u);
  EXPECT_FLOAT_EQ(q.sampling().temperature(), 0.5f);
  EXPECT_FLOAT_EQ(q.sampling().top_p(), 0.9f);
  EXPECT_EQ(q.sampling().top_k(), 20);
  EXPECT_EQ(q.sampling().seed(), 11u);
  EXPECT_EQ(q.num_return_sequences(), 3u);
  ASSERT_EQ(q.stopping().stop_size(), 1);
  EXPECT_TRUE(q.return_logprobs());
  EXPECT_EQ(q.request_id(), "u1");
  EXPECT_TRUE(r.stream && r.echo && r.include_usage);
  EXPECT_EQ(r.logprobs, 2);
  // OpenAI's defaults: 16 tokens at temperature 1.
  auto d = Parse(R"({"prompt":"x"})");
  EXPECT_EQ(d.requests[0].stopping().max_new_tokens(), 16u);
  EXPECT_FLOAT_EQ(d.requests[0].sampling().temperature(), 1.0f);
}

TEST(OpenAiApi, TaskInputsRideAsExtraFields) {
  auto r = Parse(R"({"review":{"product_title":"Lamp","category":"Home","rating":1},
                    "max_tokens":5})");
  ASSERT_EQ(r.requests.size(), 1u);
  EXPECT_EQ(r.requests[0].review().product_title(), "Lamp");
  EXPECT_FLOAT_EQ(r.requests[0].review().rating(), 1.0f);
  auto b = Parse(R"({"blog_post":{"topic":"Gifts","products":["a","b"]}})");
  EXPECT_EQ(b.requests[0].blog_post().products_size(), 2);
  EXPECT_EQ(Fails(R"({"review":{"stars":5}})").param, "review.stars");
  EXPECT_EQ(Fails(R"({"prompt":"x","review":{"rating":5}})").param, "prompt");
}

TEST(OpenAiApi, EveryBadFieldIsNamed) {
  EXPECT_EQ(Fails("not json").http_status, 400);
  EXPECT_EQ(Fails(R"({"prompt":"x","max_tokns":3})").param, "max_tokns");
  EXPECT_EQ(Fails(R"({"prompt":"x","temperature":-1})").param, "temperature");
  EXPECT_EQ(Fails(R"({"prompt":"x","top_p":0})").param, "top_p");
  EXPECT_EQ(Fails(R"({"prompt":"x","n":0})").param, "n");
  EXPECT_EQ(Fails(R"({"prompt":"x","stop":5})").param, "stop");
  EXPECT_EQ(Fails(R"({"prompt":"x","logprobs":9})").param, "logprobs");
  EXPECT_EQ(Fails(R"({"prompt":[1,2]})").param, "prompt");
  EXPECT_EQ(Fails(R"({"prompt":"x","presence_penalty":0.5})").param, "presence_penalty");
  EXPECT_EQ(Fails(R"({})").param, "prompt");
  const ApiError model = Fails(R"({"prompt":"x","model":"gpt-4"})");
  EXPECT_EQ(model.http_status, 404);
  EXPECT_EQ(model.code, "model_not_found");
  const auto json = model.ToJson();
  EXPECT_EQ(json["error"]["param"], "model");
  EXPECT_EQ(json["error"]["type"], "invalid_request_error");
}

TEST(OpenAiApi, RefusalsMapToHttpStatuses) {
  EXPECT_EQ(ErrorFromStatus(absl::InvalidArgumentError("sampling.top_k must be ...")).param,
            "sampling.top_k");
  EXPECT_EQ(ErrorFromStatus(absl::ResourceExhaustedError("queue full")).http_status, 429);
  EXPECT_EQ(ErrorFromStatus(absl::UnavailableError("draining")).http_status, 503);
  EXPECT_EQ(ErrorFromStatus(absl::InternalError("x")).http_status, 500);
}

TEST(OpenAiApi, ResponsesInOpenAisShape) {
  ChoiceResult c{"hi there", {"hi", " there"}, {-0.5f, -1.5f}, "stop"};
  auto j = CompletionResponse("cmpl-1", 7, "copyforge", {c}, Usage{3, 2, 1}, true);
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][0]["logprobs"]["text_offset"][1], 2);
  EXPECT_EQ(j["usage"]["total_tokens"], 5);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 1);
  auto chunk = CompletionChunk("cmpl-1", 7, "copyforge", 2, "x", "");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_EQ(chunk["choices"][0]["index"], 2);
}

}  // namespace
}  // namespace copyforge
