// `copyforge serve` as a real process on loopback: the TextGeneration API, health, argument
// errors, client cancellation and draining on SIGTERM.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <limits>

#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "control.grpc.pb.h"
#include "health.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "serving.grpc.pb.h"
#include "serving/json_schema.h"
#include "tests/control/fake_worker.h"
#include "tests/test_util.h"
#include "trainer/common/file_util.h"
#include "trainer/data/ngram_index.h"

namespace copyforge {
namespace {

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WriteTestFile(tmp_.File("model.yaml"),
                           "n_layer: 2\nn_head: 2\nn_embd: 64\nn_positions: 128\n"
                           "vocab_size: 50257\ndropout: 0.0\n");
    auto r = testing::RunCommand(
        bin_ + " init-model --model-config " + tmp_.File("model.yaml") + " --seed 3 --tokenizer " +
        testing::Env("COPYFORGE_GPT2_TOKENIZER") + " --out " + tmp_.File("ckpt"));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Tests that start the server their own way.
    static const std::set<std::string> kOwnServer = {"HotReloadUnderLoadWithZeroFailures",
                                                     "FollowsTheCoordinatorsCheckpoints",
                                                     "OverloadIsResourceExhausted",
                                                     "WaitsForTheFirstCheckpoint",
                                                     "OpenAiCompatibleHttpApi",
                                                     "StructuredOutputAndWatermarkOnBothFrontEnds"};
    if (!kOwnServer.count(::testing::UnitTest::GetInstance()->current_test_info()->name())) {
      Start({"--checkpoint", tmp_.File("ckpt")});
    }
  }

  void Start(std::vector<std::string> source, bool wait_for_port = true) {
    std::vector<std::string> args = {bin_,
                                     "serve",
                                     "--port-file",
                                     tmp_.File("port"),
                                     "--max-batch",
                                     max_batch_,
                                     "--max-queue",
                                     max_queue_,
                                     "--max-new-tokens",
                                     "200",
                                     "--threads",
                                     "1",
                                     "--drain-grace",
                                     "20"};
    args.insert(args.end(), {"--metrics-port", "0", "--metrics-port-file", tmp_.File("mport")});
    args.insert(args.end(), source.begin(), source.end());
    server_ = std::make_unique<testing::Process>(args, tmp_.File("serve.log"));
    if (wait_for_port) WaitForPort();
  }

  // Waits for the server's port file and connects.
  void WaitForPort() {
    for (int i = 0; i < 400 && !std::filesystem::exists(tmp_.File("port")); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto port = ReadFile(tmp_.File("port"));
    ASSERT_TRUE(port.ok()) << Log();
    address_ = "127.0.0.1:" + std::string(port->substr(0, port->size() - 1));
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::TextGeneration::NewStub(channel_);
  }

  // GET `path` from the metrics endpoint; returns the whole HTTP response.
  std::string HttpGet(const std::string& path) {
    for (int i = 0; i < 100 && !std::filesystem::exists(tmp_.File("mport")); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto port = ReadFile(tmp_.File("mport"));
    if (!port.ok()) return "";
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(*port)));
    ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
    std::string out;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
      const std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
      ::send(fd, req.data(), req.size(), 0);
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) out.append(buf, static_cast<size_t>(n));
    }
    ::close(fd);
    return out;
  }

  std::string Log() const {
    auto t = ReadFile(tmp_.File("serve.log"));
    return t.ok() ? *t : "(no log)";
  }

  v1::GenerateRequest Greedy(const std::string& prompt, uint32_t max_new) {
    v1::GenerateRequest req;
    req.set_prompt(prompt);
    req.mutable_stopping()->set_max_new_tokens(max_new);
    req.mutable_stopping()->set_ignore_eos(true);
    return req;
  }

  grpc::health::v1::HealthCheckResponse::ServingStatus Health() {
    auto health = grpc::health::v1::Health::NewStub(channel_);
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    if (!health->Check(&c, req, &resp).ok()) return grpc::health::v1::HealthCheckResponse::UNKNOWN;
    return resp.status();
  }

  testing::TempDir tmp_;
  const std::string bin_ = testing::Env("COPYFORGE_BIN");
  std::string max_batch_ = "4", max_queue_ = "4";
  std::unique_ptr<testing::Process> server_;
  std::string address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::TextGeneration::Stub> stub_;
};

TEST_F(ServerTest, GenerateStreamTokenizeInfoHealthAndDrain) {
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  v1::GenerateResponse resp;
  {
    grpc::ClientContext c;
    v1::GenerateRequest req = Greedy("Product: stainless steel bottle", 16);
    req.set_request_id("r-1");
    req.set_return_logprobs(true);
    ASSERT_TRUE(stub_->Generate(&c, req, &resp).ok()) << Log();
  }
  ASSERT_EQ(resp.completions_size(), 1);
  EXPECT_EQ(resp.completions(0).token_ids_size(), 16);
  EXPECT_EQ(resp.completions(0).logprobs_size(), 16);
  EXPECT_EQ(resp.completions(0).finish_reason(), v1::LENGTH);
  EXPECT_EQ(resp.usage().generated_tokens(), 16u);
  EXPECT_GT(resp.usage().prompt_tokens(), 0u);
  EXPECT_EQ(resp.request_id(), "r-1");
  EXPECT_EQ(resp.checkpoint(), tmp_.File("ckpt"));
  EXPECT_GT(resp.timings().total_s(), 0);
  // The stream carries the same greedy text, in pieces, with the finish on the last message.
  {
    grpc::ClientContext c;
    auto reader = stub_->GenerateStream(&c, Greedy("Product: stainless steel bottle", 16));
    v1::GenerateStreamResponse m;
    std::string text;
    int messages = 0;
    v1::FinishReason reason = v1::FINISH_REASON_UNSPECIFIED;
    while (reader->Read(&m)) {
      text += m.text();
      ++messages;
      reason = m.finish_reason();
    }
    ASSERT_TRUE(reader->Finish().ok());
    EXPECT_EQ(text, resp.completions(0).text());
    EXPECT_GT(messages, 2);
    EXPECT_EQ(reason, v1::LENGTH);
  }
  {
    grpc::ClientContext c;
    v1::TokenizeRequest req;
    req.set_text("Hello world");
    v1::TokenizeResponse t;
    ASSERT_TRUE(stub_->Tokenize(&c, req, &t).ok());
    EXPECT_EQ(std::vector<int32_t>(t.token_ids().begin(), t.token_ids().end()),
              (std::vector<int32_t>{15496, 995}));
  }
  {
    grpc::ClientContext c;
    v1::ModelInfo info;
    ASSERT_TRUE(stub_->GetModelInfo(&c, v1::GetModelInfoRequest(), &info).ok());
    EXPECT_EQ(info.n_layer(), 2);
    EXPECT_EQ(info.max_batch(), 4u);
    EXPECT_EQ(info.max_new_tokens(), 200u);
    EXPECT_EQ(info.device(), "cpu");  // --device auto on a machine without a GPU
  }
  // Prometheus metrics and /healthz.
  const std::string metrics = HttpGet("/metrics");
  EXPECT_NE(metrics.find("200 OK"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("copyforge_requests_total{outcome=\"success\"} 2"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("copyforge_request_generated_tokens_total 32"), std::string::npos);
  EXPECT_NE(metrics.find("copyforge_request_time_to_first_token_seconds_count 2"),
            std::string::npos);
  EXPECT_NE(metrics.find("copyforge_batch_max_size 4"), std::string::npos);
  EXPECT_NE(metrics.find("process_resident_memory_bytes "), std::string::npos);
  EXPECT_NE(metrics.find("process_cpu_seconds_total "), std::string::npos);
  {
    // Prometheus' own linter accepts the exposition (names, types, units, _total counters).
    const size_t body = metrics.find("\r\n\r\n");
    ASSERT_NE(body, std::string::npos);
    testing::WriteTestFile(tmp_.File("metrics.txt"), metrics.substr(body + 4));
    auto lint = testing::RunCommand("promtool check metrics < " + tmp_.File("metrics.txt"));
    EXPECT_EQ(lint.exit_code, 0) << lint.out << lint.err;
    EXPECT_EQ(lint.out + lint.err, "") << "promtool found problems";
  }
  EXPECT_NE(HttpGet("/healthz").find("200 OK"), std::string::npos);
  {
    // Clients that connect and send nothing do not hold up the liveness probe (one at a time,
    // each would keep the old single-threaded server for its 2 s read timeout).
    const int port = std::stoi(*ReadFile(tmp_.File("mport")));
    std::vector<int> idle;
    for (int i = 0; i < 6; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_port = htons(static_cast<uint16_t>(port));
      ::inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
      idle.push_back(fd);
    }
    const auto start = std::chrono::steady_clock::now();
    EXPECT_NE(HttpGet("/healthz").find("200 OK"), std::string::npos);
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 6.0)
        << "the probe waited behind idle connections";
    for (int fd : idle) ::close(fd);
  }
  // The CLI client.
  auto cli = testing::RunCommand(bin_ + " generate --server " + address_ +
                                 " --prompt 'Review:' --max-new-tokens 5 --temperature 0");
  EXPECT_EQ(cli.exit_code, 0) << cli.err;
  EXPECT_EQ(cli.out.rfind("Review:", 0), 0u) << cli.out;
  // SIGTERM with a request in flight: it finishes, health turns NOT_SERVING, the process exits 0.
  std::thread slow([&] {
    grpc::ClientContext c;
    v1::GenerateResponse r;
    EXPECT_TRUE(stub_->Generate(&c, Greedy("Blog:", 100), &r).ok());
    EXPECT_EQ(r.completions(0).token_ids_size(), 100);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  server_->Signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_NE(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  slow.join();
  const int status = server_->Wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status << Log();
}

TEST_F(ServerTest, InvalidArgumentsNameTheField) {
  auto expect_invalid = [&](v1::GenerateRequest req, const std::string& needle) {
    grpc::ClientContext c;
    v1::GenerateResponse r;
    const grpc::Status st = stub_->Generate(&c, req, &r);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    EXPECT_NE(st.error_message().find(needle), std::string::npos) << st.error_message();
  };
  v1::GenerateRequest r = Greedy("Hello", 5);
  r.mutable_sampling()->set_temperature(-0.5);
  expect_invalid(r, "sampling.temperature");
  r = Greedy("Hello", 5);
  r.mutable_sampling()->set_top_p(1.5);
  expect_invalid(r, "sampling.top_p");
  expect_invalid(Greedy("Hello", 201), "max_new_tokens 200");
  expect_invalid(Greedy("", 5), "prompt is empty");
  v1::GenerateRequest review = Greedy("", 5);
  review.mutable_review()->set_product_title("Lamp");
  review.mutable_review()->set_rating(7);
  expect_invalid(review, "review.rating must be between 1 and 5");
  v1::GenerateRequest blog = Greedy("", 5);
  blog.mutable_blog_post()->add_products("Kettle");
  expect_invalid(blog, "blog_post.topic is empty");
  // Bounds on the work one request may ask for (serving/request_limits.h).
  v1::GenerateRequest stops = Greedy("Hello", 5);
  for (int i = 0; i < 40; ++i) stops.mutable_stopping()->add_stop(std::string(200, 'a' + i % 26));
  expect_invalid(stops, "stopping.stop has 40 sequences, over the limit 16");
  r = Greedy("Hello", 5);
  r.mutable_sampling()->set_temperature(std::numeric_limits<float>::infinity());
  expect_invalid(r, "sampling.temperature must be a finite number");
  r = Greedy("Hello", 5);
  r.set_num_return_sequences(5);  // the test server has 4 KV slots
  expect_invalid(r, "num_return_sequences has 5 sequences");
  v1::GenerateRequest bad_utf8 = Greedy("", 5);
  bad_utf8.mutable_product_description()->set_title("ok");
  bad_utf8.mutable_product_description()->add_features("\xff\xfe");
  {
    grpc::ClientContext c;
    v1::GenerateResponse resp;
    EXPECT_FALSE(stub_->Generate(&c, bad_utf8, &resp).ok());  // refused, by gRPC or by us
  }
}

// Task inputs are rendered with the fine-tuning templates: the prompt is exactly the template.
TEST_F(ServerTest, TaskInputsUseTheFineTuningTemplates) {
  v1::GenerateRequest req = Greedy("", 4);
  auto* p = req.mutable_product_description();
  p->set_title("Trail Bottle");
  p->set_brand("Acme");
  p->set_category("Sports");
  p->set_price("$19.99");
  p->add_features("750 ml");
  p->add_features("keeps cold 24 h");
  v1::GenerateResponse resp;
  {
    grpc::ClientContext c;
    ASSERT_TRUE(stub_->Generate(&c, req, &resp).ok());
  }
  const std::string expected =
      "Write a product description.\nProduct: Trail Bottle\nBrand: Acme\nCategory: Sports\n"
      "Price: $19.99\nFeatures:\n- 750 ml\n- keeps cold 24 h\nDescription:";
  grpc::ClientContext c;
  v1::TokenizeRequest t;
  t.set_text(expected);
  v1::TokenizeResponse ids;
  ASSERT_TRUE(stub_->Tokenize(&c, t, &ids).ok());
  EXPECT_EQ(resp.usage().prompt_tokens(), static_cast<uint32_t>(ids.token_ids_size()));
  v1::GenerateRequest business = Greedy("", 4);
  business.mutable_review()->set_business_name("Luigi's");
  business.mutable_review()->set_city("Austin");
  business.mutable_review()->set_state("TX");
  business.mutable_review()->set_rating(4.5f);
  grpc::ClientContext c2;
  EXPECT_TRUE(stub_->Generate(&c2, business, &resp).ok());
  v1::GenerateRequest blog = Greedy("", 4);
  blog.mutable_blog_post()->set_topic("Gifts for runners");
  blog.mutable_blog_post()->add_products("Trail Bottle");
  grpc::ClientContext c3;
  EXPECT_TRUE(stub_->Generate(&c3, blog, &resp).ok());
}

TEST_F(ServerTest, ClientCancelMidStreamThenTheServerStillAnswers) {
  {
    grpc::ClientContext c;
    auto reader = stub_->GenerateStream(&c, Greedy("Blog:", 190));
    v1::GenerateStreamResponse m;
    ASSERT_TRUE(reader->Read(&m));
    c.TryCancel();
    while (reader->Read(&m)) {
    }
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // Four slots: four full-length requests at once all complete, so the cancelled one's slot
  // came back.
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      grpc::ClientContext c;
      v1::GenerateResponse r;
      if (stub_->Generate(&c, Greedy("Hello", 20), &r).ok()) ++ok;
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(ok.load(), 4);
}

// A server brought up before its job has written a checkpoint waits for the first one (with a
// progress line), then serves it; a shutdown signal ends the wait at once.
// The OpenAI-compatible HTTP API on the same engine: the official `openai` npm client (unary,
// streaming, n, stop, logprobs, echo, error classes), curl for the raw protocol, the serving
// token, 503 while no model is loaded, and both front ends in the metrics.
TEST_F(ServerTest, OpenAiCompatibleHttpApi) {
  testing::WriteTestFile(tmp_.File("token"), "http-secret\n");
  NgramIndexBuilder copy_index(8);
  copy_index.Add({1, 2, 3, 4, 5, 6, 7, 8, 9});
  ASSERT_TRUE(copy_index.Write(tmp_.File("ngrams.bin")).ok());
  Start({"--checkpoint", tmp_.File("ckpt"), "--http-port", "0", "--http-port-file",
         tmp_.File("hport"), "--token-file", tmp_.File("token"), "--copy-index",
         tmp_.File("ngrams.bin")});
  const std::string hport = testing::WaitForPortFile(tmp_.File("hport"));
  ASSERT_FALSE(hport.empty()) << Log();
  const std::string base = "http://127.0.0.1:" + hport;
  auto client = testing::RunCommand(
      "node " + testing::Env("COPYFORGE_SOURCE_DIR") + "/tests/fixtures/openai_client.js " +
      testing::Env("COPYFORGE_NPM_DIR") + "/node_modules " + base + "/v1 http-secret");
  EXPECT_EQ(client.exit_code, 0) << client.out << client.err;
  EXPECT_NE(client.out.find("openai_client: ok"), std::string::npos) << client.err;

  const std::string curl = "curl -sS -H 'Authorization: Bearer http-secret' ";
  auto unary = testing::RunCommand(curl + base +
                                   "/v1/completions -d '{\"prompt\":\"Hello\",\"max_tokens\":3,"
                                   "\"temperature\":0}'");
  auto j = nlohmann::json::parse(unary.out);
  EXPECT_EQ(j["usage"]["completion_tokens"], 3) << unary.out;
  EXPECT_EQ(j["choices"][0]["longest_copied_tokens"], 0) << unary.out;  // the guard reports
  // The same request over gRPC gives the same text: one engine behind both front ends.
  grpc::ClientContext c;
  c.AddMetadata("authorization", "Bearer http-secret");
  v1::GenerateResponse resp;
  v1::GenerateRequest req = Greedy("Hello", 3);
  req.mutable_stopping()->set_ignore_eos(false);
  ASSERT_TRUE(stub_->Generate(&c, req, &resp).ok());
  EXPECT_EQ(resp.completions(0).text(), j["choices"][0]["text"]);
  // A repeated long prompt takes its whole blocks from the prefix cache on both front ends.
  const std::string long_prompt =
      "Write a product description. Product: a stainless steel water bottle that keeps drinks "
      "cold for a day and hot for twelve hours; 750 ml; fits a cup holder; dishwasher safe.";
  const std::string body = "/v1/completions -d '{\"prompt\":\"" + long_prompt +
                           "\",\"max_tokens\":2,\"temperature\":0}'";
  auto first = nlohmann::json::parse(testing::RunCommand(curl + base + body).out);
  auto again = nlohmann::json::parse(testing::RunCommand(curl + base + body).out);
  EXPECT_GE(again["usage"]["prompt_tokens_details"]["cached_tokens"], 32) << again;
  EXPECT_EQ(again["choices"][0]["text"], first["choices"][0]["text"]);
  grpc::ClientContext c2;
  c2.AddMetadata("authorization", "Bearer http-secret");
  v1::GenerateResponse cached;
  ASSERT_TRUE(stub_->Generate(&c2, Greedy(long_prompt, 2), &cached).ok());
  EXPECT_GE(cached.usage().cached_prompt_tokens(), 32u);
  EXPECT_LT(cached.usage().cached_prompt_tokens(), cached.usage().prompt_tokens());

  auto sse = testing::RunCommand(curl + "-N " + base +
                                 "/v1/completions -d '{\"prompt\":\"Hello\",\"max_tokens\":3,"
                                 "\"stream\":true}'");
  EXPECT_EQ(sse.out.rfind("data: {", 0), 0u) << sse.out;
  EXPECT_NE(sse.out.find("\"finish_reason\":\"length\""), std::string::npos) << sse.out;
  EXPECT_EQ(sse.out.substr(sse.out.size() - 14), "data: [DONE]\n\n") << sse.out;
  auto status = [&](const std::string& args) {
    return testing::RunCommand("curl -s -o /dev/null -w '%{http_code}' " + args).out;
  };
  EXPECT_EQ(status(base + "/v1/completions -d '{\"prompt\":\"x\"}'"), "401");
  EXPECT_EQ(status("-H 'Authorization: Bearer http-secret' " + base +
                   "/v1/completions -d '{\"prompt\":\"x\",\"top_p\":2}'"),
            "400");
  EXPECT_EQ(status(base + "/health"), "200");
  EXPECT_EQ(status(base + "/v1/nothing"), "404");
  const std::string metrics = HttpGet("/metrics");
  EXPECT_EQ(metrics.find("copyforge_frontend_requests_total{front_end=\"http\"} 0"),
            std::string::npos);
  EXPECT_EQ(metrics.find("copyforge_frontend_requests_total{front_end=\"grpc\"} 0"),
            std::string::npos);
  EXPECT_EQ(metrics.find("copyforge_prefix_cache_hit_tokens_total 0"), std::string::npos);
  EXPECT_NE(metrics.find("copyforge_prefix_cache_hit_tokens_total "), std::string::npos);

  // No model yet: health 503 "loading", completions 503 in OpenAI's shape.
  testing::Process waiting({bin_, "serve", "--follow-run", tmp_.File("no-run"), "--wait-checkpoint",
                            "60", "--http-port", "0", "--http-port-file", tmp_.File("hport2")},
                           tmp_.File("serve2.log"));
  const std::string hport2 = testing::WaitForPortFile(tmp_.File("hport2"));
  ASSERT_FALSE(hport2.empty());
  const std::string base2 = "http://127.0.0.1:" + hport2;
  EXPECT_EQ(status(base2 + "/health"), "503");
  auto loading =
      testing::RunCommand("curl -sS " + base2 + "/v1/completions -d '{\"prompt\":\"x\"}'");
  EXPECT_NE(loading.out.find("no model loaded yet"), std::string::npos) << loading.out;
  waiting.Signal(SIGTERM);
  waiting.Wait();
}

TEST_F(ServerTest, StructuredOutputAndWatermarkOnBothFrontEnds) {
  testing::WriteTestFile(tmp_.File("wm.key"), "a watermark secret");
  Start({"--checkpoint", tmp_.File("ckpt"), "--http-port", "0", "--http-port-file",
         tmp_.File("hport"), "--watermark-key-file", tmp_.File("wm.key")});
  const std::string hport = testing::WaitForPortFile(tmp_.File("hport"));
  ASSERT_FALSE(hport.empty()) << Log();
  // gRPC: the ready product-listing schema; every seed's document parses and has its fields.
  for (uint64_t seed = 0; seed < 4; ++seed) {
    grpc::ClientContext c;
    v1::GenerateRequest req;
    req.set_prompt("Product listing:");
    req.mutable_sampling()->set_temperature(1);
    req.mutable_sampling()->set_seed(seed);
    req.mutable_stopping()->set_max_new_tokens(200);
    req.mutable_response_format()->set_named_schema("product_listing");
    req.mutable_watermark()->set_mode(v1::WatermarkOptions::OFF);
    v1::GenerateResponse resp;
    ASSERT_TRUE(stub_->Generate(&c, req, &resp).ok()) << Log();
    const v1::Completion& done = resp.completions(0);
    EXPECT_FALSE(done.watermarked());
    // The tiny model's 128 positions end most listings early: what came is a valid prefix.
    auto listing = JsonSchema::Compile(JsonSchema::ProductListing());
    SchemaState state = (*listing)->Start();
    EXPECT_TRUE((*listing)->Feed(state, done.text())) << done.text();
    if (done.finish_reason() == v1::LENGTH) continue;
    EXPECT_EQ(done.finish_reason(), v1::EOS);
    auto j = nlohmann::json::parse(done.text(), nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << done.text();
    EXPECT_TRUE(j["title"].is_string() && j["bullets"].is_array() && j["description"].is_string())
        << done.text();
  }
  {  // A schema error names the field and the schema path.
    grpc::ClientContext c;
    v1::GenerateRequest req = Greedy("x", 5);
    req.mutable_stopping()->set_ignore_eos(false);
    req.mutable_response_format()->set_json_schema(
        R"({"type":"object","properties":{"a":{"type":"string","format":"email"}}})");
    v1::GenerateResponse resp;
    const grpc::Status st = stub_->Generate(&c, req, &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("response_format.json_schema: /properties/a: keyword "
                                      "'format' is not supported"),
              std::string::npos)
        << st.error_message();
  }
  // Reviews are watermarked by default; Detect finds it with the server's key, and `copyforge
  // detect` agrees locally with the key file and over gRPC.
  v1::GenerateRequest review;
  review.mutable_review()->set_product_title("Steel bottle");
  review.mutable_review()->set_rating(5);
  review.mutable_sampling()->set_temperature(1);
  review.mutable_stopping()->set_max_new_tokens(120);
  review.mutable_stopping()->set_ignore_eos(true);
  grpc::ClientContext gc;
  v1::GenerateResponse generated;
  ASSERT_TRUE(stub_->Generate(&gc, review, &generated).ok());
  ASSERT_TRUE(generated.completions(0).watermarked());
  grpc::ClientContext dc;
  v1::DetectRequest detect;
  detect.mutable_token_ids()->CopyFrom(generated.completions(0).token_ids());
  v1::DetectResponse verdict;
  ASSERT_TRUE(stub_->Detect(&dc, detect, &verdict).ok());
  EXPECT_TRUE(verdict.watermarked()) << verdict.z_score();
  EXPECT_GT(verdict.z_score(), 4);
  grpc::ClientContext pc;
  v1::DetectRequest plain;
  plain.set_text(
      "We bought this bottle for hiking and it kept water cold through a long summer day. The "
      "lid seals well, the paint has not chipped after months of use, and it fits the cup "
      "holder in our car. Cleaning is easy with a brush. Would buy again for the whole family.");
  ASSERT_TRUE(stub_->Detect(&pc, plain, &verdict).ok());
  EXPECT_FALSE(verdict.watermarked()) << verdict.z_score();
  testing::WriteTestFile(tmp_.File("review.txt"), generated.completions(0).text());
  auto local =
      testing::RunCommand(bin_ + " detect --input " + tmp_.File("review.txt") + " --key-file " +
                          tmp_.File("wm.key") + " --tokenizer " + tmp_.File("ckpt") + " --json");
  ASSERT_EQ(local.exit_code, 0) << local.err;
  EXPECT_EQ(nlohmann::json::parse(local.out)["watermarked"], true) << local.out;
  auto remote =
      testing::RunCommand(bin_ + " detect --server " + address_ + " --text '" + plain.text() + "'");
  ASSERT_EQ(remote.exit_code, 0) << remote.err;
  EXPECT_EQ(remote.out.rfind("not watermarked: z=", 0), 0u) << remote.out;

  // HTTP: OpenAI's response_format with a schema of our own, watermark on a plain prompt, and
  // /v1/detect.
  const std::string base = "http://127.0.0.1:" + hport;
  auto http = testing::RunCommand(
      "curl -sS " + base +
      R"(/v1/completions -d '{"prompt":"Item:","max_tokens":150,"seed":3,"watermark":true,)"
      R"("response_format":{"type":"json_schema","json_schema":{"name":"item","schema":)"
      R"({"type":"object","properties":{"name":{"type":"string","maxLength":10},)"
      R"("count":{"type":"integer","minimum":0,"maximum":9}},"required":["name","count"]}}}}')");
  auto body = nlohmann::json::parse(http.out, nullptr, false);
  ASSERT_FALSE(body.is_discarded()) << http.out;
  EXPECT_EQ(body["choices"][0]["watermarked"], true) << http.out;
  ASSERT_EQ(body["choices"][0]["finish_reason"], "stop") << http.out;
  auto doc = nlohmann::json::parse(body["choices"][0]["text"].get<std::string>());
  EXPECT_TRUE(doc["name"].is_string() && doc["count"].is_number_integer()) << doc;
  EXPECT_LE(doc["count"].get<int>(), 9);
  auto bad = testing::RunCommand(
      "curl -sS " + base +
      R"(/v1/completions -d '{"prompt":"x","response_format":{"type":"json_object"}}')");
  EXPECT_NE(bad.out.find("\"param\":\"response_format.type\""), std::string::npos) << bad.out;
  nlohmann::json ask = {{"text", plain.text()}};
  testing::WriteTestFile(tmp_.File("detect.json"), ask.dump());
  auto detected =
      testing::RunCommand("curl -sS " + base + "/v1/detect -d @" + tmp_.File("detect.json"));
  auto answer = nlohmann::json::parse(detected.out, nullptr, false);
  ASSERT_FALSE(answer.is_discarded()) << detected.out;
  EXPECT_EQ(answer["watermarked"], false) << detected.out;
  EXPECT_GT(answer["scored_tokens"].get<int>(), 40);
  const std::string metrics = HttpGet("/metrics");
  EXPECT_NE(metrics.find("copyforge_structured_sequences_total 5"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("copyforge_watermarked_sequences_total 2"), std::string::npos) << metrics;
}

TEST_F(ServerTest, WaitsForTheFirstCheckpoint) {
  namespace fs = std::filesystem;
  fs::create_directories(tmp_.File("run/checkpoints"));
  // Polls a log file until it holds `text` (the process got that far).
  auto logged = [](const std::string& path, const std::string& text) {
    for (int i = 0; i < 600; ++i) {
      auto log = ReadFile(path);
      if (log.ok() && log->find(text) != std::string::npos) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  };
  Start({"--follow-run", tmp_.File("run"), "--wait-checkpoint", "120"}, /*wait_for_port=*/false);
  ASSERT_TRUE(logged(tmp_.File("serve.log"), "waiting for the first checkpoint")) << Log();
  EXPECT_FALSE(fs::exists(tmp_.File("port")));  // written once SERVING
  {
    // The port is open while it waits: health NOT_SERVING (so a probe sees "not ready", not a
    // refused connection) and TextGeneration UNAVAILABLE.
    const std::string log = Log();
    const std::string marker = "listening on 127.0.0.1:";
    const size_t at = log.find(marker);
    ASSERT_NE(at, std::string::npos) << log;
    EXPECT_NE(log.find("health NOT_SERVING until a model loads"), std::string::npos) << log;
    address_ = "127.0.0.1:" + std::to_string(std::stoi(log.substr(at + marker.size())));
    channel_ = grpc::CreateChannel(address_, grpc::InsecureChannelCredentials());
    stub_ = v1::TextGeneration::NewStub(channel_);
    EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    grpc::ClientContext c;
    v1::GenerateResponse resp;
    const grpc::Status st = stub_->Generate(&c, Greedy("Hello", 5), &resp);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_NE(st.error_message().find("no model loaded yet"), std::string::npos);
    EXPECT_NE(HttpGet("/metrics").find("copyforge_serving 0"), std::string::npos);
  }
  fs::copy(tmp_.File("ckpt"), tmp_.File("staging"), fs::copy_options::recursive);
  fs::rename(tmp_.File("staging"), tmp_.File("run/checkpoints/step_0000003"));
  WaitForPort();
  EXPECT_EQ(Health(), grpc::health::v1::HealthCheckResponse::SERVING);
  grpc::ClientContext c;
  v1::GenerateResponse resp;
  ASSERT_TRUE(stub_->Generate(&c, Greedy("Hello", 5), &resp).ok()) << Log();
  EXPECT_EQ(resp.checkpoint(), tmp_.File("run/checkpoints/step_0000003"));

  // Without a checkpoint ever arriving, SIGTERM ends the wait (no port, a clear log line).
  testing::Process waiting({bin_, "serve", "--follow-run", tmp_.File("empty-run"),
                            "--wait-checkpoint", "120", "--port-file", tmp_.File("port2")},
                           tmp_.File("serve2.log"));
  ASSERT_TRUE(logged(tmp_.File("serve2.log"), "waiting for the first checkpoint"));
  const auto sent = std::chrono::steady_clock::now();
  waiting.Signal(SIGTERM);
  const int status = waiting.Wait();
  EXPECT_LT(std::chrono::steady_clock::now() - sent, std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0) << status;
  EXPECT_FALSE(fs::exists(tmp_.File("port2")));
  auto log2 = ReadFile(tmp_.File("serve2.log"));
  ASSERT_TRUE(log2.ok());
  EXPECT_NE(log2->find("stopped while waiting for the first checkpoint"), std::string::npos)
      << *log2;
}

// New checkpoints appear in a followed run directory while four clients keep generating: the
// good one swaps in with no failed request, a corrupt one is refused and the good one keeps
// serving.
TEST_F(ServerTest, HotReloadUnderLoadWithZeroFailures) {
  namespace fs = std::filesystem;
  auto place = [&](const std::string& from, const std::string& step) {
    fs::copy(from, tmp_.File("staging"), fs::copy_options::recursive);
    fs::rename(tmp_.File("staging"), tmp_.File("run/checkpoints/" + step));
  };
  fs::create_directories(tmp_.File("run/checkpoints"));
  place(tmp_.File("ckpt"), "step_0000001");
  Start({"--follow-run", tmp_.File("run")});
  auto r = testing::RunCommand(bin_ + " init-model --model-config " + tmp_.File("model.yaml") +
                               " --seed 4 --tokenizer " + testing::Env("COPYFORGE_GPT2_TOKENIZER") +
                               " --out " + tmp_.File("ckpt2"));
  ASSERT_EQ(r.exit_code, 0) << r.err;

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::mutex mu;
  std::map<std::string, std::string> text_by_checkpoint;  // greedy output per model
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        grpc::ClientContext c;
        v1::GenerateResponse resp;
        const grpc::Status st = stub_->Generate(&c, Greedy("Product: lamp", 12), &resp);
        if (!st.ok()) {
          ++failed;
          continue;
        }
        ++ok;
        std::lock_guard<std::mutex> lock(mu);
        text_by_checkpoint[resp.checkpoint()] = resp.completions(0).text();
      }
    });
  }
  auto seen = [&](const std::string& step) {
    std::lock_guard<std::mutex> lock(mu);
    return text_by_checkpoint.count(tmp_.File("run/checkpoints/" + step)) > 0;
  };
  for (int i = 0; i < 200 && !seen("step_0000001"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  place(tmp_.File("ckpt2"), "step_0000002");
  for (int i = 0; i < 400 && !seen("step_0000002"); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(seen("step_0000002")) << Log();
  // A corrupt checkpoint: one flipped byte in the weights, caught by the manifest.
  fs::copy(tmp_.File("ckpt2"), tmp_.File("bad"), fs::copy_options::recursive);
  {
    std::fstream f(tmp_.File("bad/model.safetensors"),
                   std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-10, std::ios::end);
    f.put('\x7f');
  }
  fs::rename(tmp_.File("bad"), tmp_.File("run/checkpoints/step_0000003"));
  for (int i = 0; i < 100 && Log().find("refused checkpoint") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const int before = ok;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop = true;
  for (auto& t : clients) t.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(ok.load(), before);  // still answering after the refusal
  EXPECT_NE(Log().find("refused checkpoint " + tmp_.File("run/checkpoints/step_0000003")),
            std::string::npos)
      << Log();
  EXPECT_FALSE(seen("step_0000003"));
  EXPECT_NE(text_by_checkpoint[tmp_.File("run/checkpoints/step_0000001")],
            text_by_checkpoint[tmp_.File("run/checkpoints/step_0000002")]);
  grpc::ClientContext c;
  v1::ModelInfo info;
  ASSERT_TRUE(stub_->GetModelInfo(&c, v1::GetModelInfoRequest(), &info).ok());
  EXPECT_EQ(info.checkpoint(), tmp_.File("run/checkpoints/step_0000002"));
}

// One slot and a queue of one, both taken: a further request is RESOURCE_EXHAUSTED at once, and
// the server answers again when the others are done.
TEST_F(ServerTest, OverloadIsResourceExhausted) {
  max_batch_ = "1";
  max_queue_ = "1";
  Start({"--checkpoint", tmp_.File("ckpt")});
  // Two long requests take the slot and the queue for a while; short probes meanwhile are
  // refused at once (whichever request arrives while both are taken is the one refused).
  std::atomic<int> ok{0}, running{2};
  std::mutex mu;
  std::vector<std::string> refusals;
  auto call = [&](const v1::GenerateRequest& req) {
    grpc::ClientContext c;
    v1::GenerateResponse r;
    const grpc::Status st = stub_->Generate(&c, req, &r);
    if (st.ok()) ++ok;
    if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
      std::lock_guard<std::mutex> lock(mu);
      refusals.push_back(st.error_message());
    }
    return st.error_code();
  };
  std::vector<std::thread> fillers;
  for (int i = 0; i < 2; ++i) {
    fillers.emplace_back([&] {
      call(Greedy("Blog:", 120));
      --running;
    });
  }
  int probes = 0;
  while (running > 0) {
    if (call(Greedy("Hello", 1)) == grpc::StatusCode::RESOURCE_EXHAUSTED) break;
    ++probes;
  }
  for (auto& t : fillers) t.join();
  ASSERT_FALSE(refusals.empty()) << probes << " probes all admitted";
  EXPECT_NE(refusals[0].find("max_queue"), std::string::npos) << refusals[0];
  EXPECT_GE(ok.load(), 1);
  grpc::ClientContext c;
  v1::GenerateResponse r;
  EXPECT_TRUE(stub_->Generate(&c, Greedy("Hello", 5), &r).ok());
  EXPECT_EQ(HttpGet("/metrics").find("copyforge_requests_total{outcome=\"resource_exhausted\"} 0"),
            std::string::npos);  // counted
}

// `serve --coordinator --job` starts from the job's latest checkpoint and swaps in each one the
// coordinator publishes on WatchCheckpoints.
TEST_F(ServerTest, FollowsTheCoordinatorsCheckpoints) {
  testing::Process coordinator({bin_, "coordinator", "--state-dir", tmp_.File("state"),
                                "--port-file", tmp_.File("cport"), "--storage-root", tmp_.path()},
                               tmp_.File("coordinator.log"));
  for (int i = 0; i < 200 && !std::filesystem::exists(tmp_.File("cport")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  auto cport = ReadFile(tmp_.File("cport"));
  ASSERT_TRUE(cport.ok());
  const std::string at = "127.0.0.1:" + cport->substr(0, cport->size() - 1);
  auto channel = grpc::CreateChannel(at, grpc::InsecureChannelCredentials());
  auto jobs = v1::JobService::NewStub(channel);
  auto workers = v1::WorkerService::NewStub(channel);
  std::string job;
  {
    grpc::ClientContext c;
    v1::SubmitJobRequest req;
    req.set_spec_yaml("name: serve-me\ntrain:\n  model: " + tmp_.File("model.yaml") +
                      "\n  data: " + tmp_.File("data") + "\n  out: " + tmp_.File("run") + "\n");
    v1::SubmitJobResponse resp;
    ASSERT_TRUE(jobs->SubmitJob(&c, req, &resp).ok());
    job = resp.job_id();
  }
  // Only the job's current rank 0 publishes, and only directories inside the run directory.
  testing::FakeWorker rank0(workers.get(), "trainer");
  ASSERT_TRUE(rank0.Register().ok());
  v1::Assignment assignment;
  ASSERT_TRUE(rank0.AwaitStart(&assignment));
  auto publish = [&](const std::string& path, int64_t step) {
    const grpc::Status st = rank0.RegisterCheckpoint(assignment, path, step);
    ASSERT_TRUE(st.ok()) << st.error_message();
  };
  std::filesystem::create_directories(tmp_.File("run/checkpoints"));
  std::filesystem::rename(tmp_.File("ckpt"), tmp_.File("run/checkpoints/step_0000001"));
  publish(tmp_.File("run/checkpoints/step_0000001"), 1);
  // The rank keeps heartbeating while serving follows (the registration would expire).
  std::atomic<bool> done{false};
  std::thread beats([&] {
    while (!done) {
      v1::HeartbeatResponse r;
      rank0.Beat(v1::TRAINING, job, assignment.generation(), &r).IgnoreError();
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
  });
  struct Join {
    std::atomic<bool>* done;
    std::thread* t;
    ~Join() {
      *done = true;
      t->join();
    }
  } join{&done, &beats};
  // Followed by its name, as a deployment's YAML names it.
  Start({"--coordinator", at, "--job", "serve-me"});
  auto serving = [&] {
    grpc::ClientContext c;
    v1::ModelInfo info;
    return stub_->GetModelInfo(&c, v1::GetModelInfoRequest(), &info).ok() ? info.checkpoint()
                                                                          : std::string();
  };
  EXPECT_EQ(serving(), tmp_.File("run/checkpoints/step_0000001"));
  const std::string second = tmp_.File("run/checkpoints/step_0000002");
  auto r = testing::RunCommand(bin_ + " init-model --model-config " + tmp_.File("model.yaml") +
                               " --seed 5 --tokenizer " + testing::Env("COPYFORGE_GPT2_TOKENIZER") +
                               " --out " + second);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  publish(second, 2);
  for (int i = 0; i < 200 && serving() != second; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(serving(), second) << Log();
  grpc::ClientContext c;
  v1::GenerateResponse resp;
  ASSERT_TRUE(stub_->Generate(&c, Greedy("Hello", 4), &resp).ok());
  EXPECT_EQ(resp.checkpoint(), second);
}

}  // namespace
}  // namespace copyforge
