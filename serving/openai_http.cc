#include "serving/openai_http.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "serving/openai_api.h"

namespace copyforge {
namespace {

using Json = nlohmann::ordered_json;

void Reply(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                  "application/json");
}

void Error(httplib::Response& res, const ApiError& e) { Reply(res, e.http_status, e.ToJson()); }

// A missing or wrong bearer token, the same answer on every route.
ApiError Unauthorized() {
  ApiError e = ErrorFromStatus(absl::UnauthenticatedError("missing or invalid credentials"));
  e.code = "invalid_api_key";
  return e;
}

std::string Bearer(const httplib::Request& req) {
  const std::string h = req.get_header_value("Authorization");
  return absl::StartsWithIgnoreCase(h, "Bearer ") ? h.substr(7) : "";
}

const char* FinishReasonOf(FinishReason r) {
  return r == FinishReason::kLength      ? "length"
         : r == FinishReason::kCopyLimit ? "copy_limit"
                                         : "stop";
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string CompletionId() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(rng()));
  return absl::StrCat("cmpl-", buf);
}

// One /v1/completions call in flight: its sequences' chunks arrive in `box`.
struct Call {
  CompletionRequest request;
  std::shared_ptr<Mailbox> box = std::make_shared<Mailbox>();
  uint32_t sequences = 0;
  std::string id = CompletionId();
  int64_t created = UnixNow();
  Caller caller;
};

// Submits every prompt of the call; on a refusal the ones queued are cancelled.
absl::Status SubmitCall(Frontend* front, Call* call) {
  for (size_t p = 0; p < call->request.requests.size(); ++p) {
    uint32_t n = 0;
    absl::Status st = front->Submit(call->request.requests[p], call->caller, call->box, &n,
                                    static_cast<uint32_t>(p) * call->request.n);
    if (!st.ok()) {
      call->box->cancelled = true;
      return st;
    }
    call->sequences += n;
  }
  return absl::OkStatus();
}

// Adds a finished sequence to the call's usage: each prompt counts once, not once per choice.
void Count(const Call& call, uint32_t sequence, const EngineChunk& done, Usage* usage) {
  if (sequence % call.request.n == 0) {
    usage->prompt_tokens += done.prompt_tokens;
    usage->cached_tokens += done.cached_prompt_tokens;
  }
  usage->completion_tokens += done.generated_tokens;
}

void HandleUnary(Frontend* front, const std::string& model, Call& call, httplib::Response& res) {
  Engine* engine = front->live();
  std::vector<ChoiceResult> choices(call.sequences);
  Usage usage;
  absl::Status failure;
  for (uint32_t done = 0; done < call.sequences;) {
    std::pair<uint32_t, EngineChunk> item;
    front->Next(*call.box, call.caller, &item);
    auto& [i, chunk] = item;
    ChoiceResult& c = choices[i];
    c.text += chunk.text;
    for (int32_t id : chunk.ids) c.tokens.push_back(engine->TokenText(id));
    c.logprobs.insert(c.logprobs.end(), chunk.logprobs.begin(), chunk.logprobs.end());
    if (!chunk.done) continue;
    ++done;
    front->Record(chunk);
    if (!chunk.status.ok() && failure.ok()) failure = chunk.status;
    c.finish_reason = FinishReasonOf(chunk.reason);
    c.longest_copy = chunk.longest_copy;
    c.watermarked = call.box->watermarked;
    Count(call, i, chunk, &usage);
  }
  if (!failure.ok()) return Error(res, ErrorFromStatus(failure));
  if (call.request.echo) {
    for (size_t i = 0; i < choices.size(); ++i) {
      choices[i].text = call.request.echo_text[i / call.request.n] + choices[i].text;
    }
  }
  Reply(
      res, 200,
      CompletionResponse(call.id, call.created, model, choices, usage, call.request.logprobs >= 0));
}

// Streams the call as server-sent events; returns false once the client is gone.
bool Stream(Frontend* front, const std::string& model, Call& call, httplib::DataSink& sink) {
  auto send = [&sink](const Json& event) {
    const std::string data = absl::StrCat(
        "data: ", event.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), "\n\n");
    return sink.write(data.data(), data.size());
  };
  bool open = true;
  if (call.request.echo) {
    for (uint32_t i = 0; i < call.sequences && open; ++i) {
      open = send(CompletionChunk(call.id, call.created, model, i,
                                  call.request.echo_text[i / call.request.n], ""));
    }
  }
  Usage usage;
  for (uint32_t done = 0; done < call.sequences;) {
    std::pair<uint32_t, EngineChunk> item;
    front->Next(*call.box, call.caller, &item);
    auto& [i, chunk] = item;
    if (chunk.done) {
      ++done;
      front->Record(chunk);
      Count(call, i, chunk, &usage);
    }
    if (!open) continue;  // drain what the engine still sends for a cancelled call
    if (chunk.done && !chunk.status.ok()) {
      open = send(ErrorFromStatus(chunk.status).ToJson());
      continue;
    }
    if (!chunk.text.empty() || chunk.done) {
      Json event = CompletionChunk(call.id, call.created, model, i, chunk.text,
                                   chunk.done ? FinishReasonOf(chunk.reason) : "");
      if (chunk.done && chunk.longest_copy >= 0) {
        event["choices"][0]["longest_copied_tokens"] = chunk.longest_copy;
      }
      if (chunk.done && call.box->watermarked) event["choices"][0]["watermarked"] = true;
      open = send(event);
    }
    if (!open) call.box->cancelled = true;
  }
  if (open && call.request.include_usage) {
    open = send({{"id", call.id},
                 {"object", "text_completion"},
                 {"created", call.created},
                 {"model", model},
                 {"choices", Json::array()},
                 {"usage", UsageJson(usage)}});
  }
  if (open) {
    static const std::string kDone = "data: [DONE]\n\n";
    open = sink.write(kDone.data(), kDone.size());
  }
  sink.done();
  return open;
}

void Completions(Frontend* front, const std::string& model, const httplib::Request& req,
                 httplib::Response& res) {
  front->metrics().FrontEnd("http");
  if (!front->Authorize(Bearer(req))) return Error(res, Unauthorized());
  auto call = std::make_shared<Call>();
  ApiError parse_error;
  auto parsed = ParseCompletionRequest(req.body, model, &parse_error);
  if (!parsed.ok()) {
    front->metrics().Rejected(Frontend::Outcome(parsed.status()));
    return Error(res, parse_error);
  }
  call->request = *std::move(parsed);
  if (absl::Status st = SubmitCall(front, call.get()); !st.ok()) {
    return Error(res, ErrorFromStatus(st));
  }
  if (!call->request.stream) return HandleUnary(front, model, *call, res);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [front, model, call](size_t, httplib::DataSink& sink) {
        Stream(front, model, *call, sink);
        return true;
      },
      [call](bool) { call->box->cancelled = true; });
}

// POST /v1/detect: {"text": ...} or {"token_ids": [...]} scored with the server's watermark key.
void DetectRoute(Frontend* front, const httplib::Request& req, httplib::Response& res) {
  front->metrics().FrontEnd("http");
  if (!front->Authorize(Bearer(req))) return Error(res, Unauthorized());
  const Json j = Json::parse(req.body, nullptr, /*allow_exceptions=*/false);
  ApiError bad;
  if (!j.is_object()) {
    bad.message = "the body must be a JSON object";
    return Error(res, bad);
  }
  std::string text;
  std::vector<int32_t> ids;
  for (const auto& [key, v] : j.items()) {
    bad.param = key;
    if (key == "text" && v.is_string()) {
      text = v.get<std::string>();
    } else if (key == "token_ids" && v.is_array()) {
      for (const Json& id : v) {
        if (!id.is_number_integer()) {
          bad.message = "token_ids must be integers";
          return Error(res, bad);
        }
        ids.push_back(static_cast<int32_t>(std::clamp<int64_t>(id.get<int64_t>(), -1, 1 << 30)));
      }
    } else {
      bad.message = key == "text" || key == "token_ids" ? key + " has the wrong type"
                                                        : "unknown field " + key;
      return Error(res, bad);
    }
  }
  absl::StatusOr<WatermarkDetection> d = front->Detect(text, ids);
  if (!d.ok()) return Error(res, ErrorFromStatus(d.status()));
  Reply(res, 200,
        {{"z_score", d->z},
         {"p_value", d->p_value},
         {"watermarked", d->watermarked},
         {"scored_tokens", d->scored},
         {"green_tokens", d->green},
         {"threshold", front->watermark().z_threshold},
         {"gamma", front->watermark().gamma}});
}

}  // namespace

absl::StatusOr<std::unique_ptr<OpenAiHttpServer>> OpenAiHttpServer::Start(
    const std::string& host, int port, const TlsFiles& tls, Frontend* front,
    const std::string& model, int threads) {
  std::unique_ptr<OpenAiHttpServer> s(new OpenAiHttpServer());
  auto listener = HttpListener::Create(tls, "http");
  if (!listener.ok()) return listener.status();
  s->listener_ = *std::move(listener);
  httplib::Server& http = s->listener_->server();
  // A streaming request holds its thread while it runs: enough threads for every slot and
  // queue place, bounded.
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_read_timeout(10, 0);
  http.set_write_timeout(30, 0);
  http.set_payload_max_length(4 << 20);  // as the gRPC port's message limit
  http.Post("/v1/completions", [front, model](const httplib::Request& req, httplib::Response& res) {
    Completions(front, model, req, res);
  });
  http.Post("/v1/detect", [front](const httplib::Request& req, httplib::Response& res) {
    DetectRoute(front, req, res);
  });
  http.Get("/v1/models", [front, model](const httplib::Request& req, httplib::Response& res) {
    if (!front->Authorize(Bearer(req))) return Error(res, Unauthorized());
    Json entry = {{"id", model}, {"object", "model"}, {"created", 0}, {"owned_by", "copyforge"}};
    if (Engine* engine = front->live()) {
      const EngineStats st = engine->stats();
      entry["checkpoint"] = st.checkpoint;
      entry["checkpoint_step"] = st.checkpoint_step;
      entry["max_model_len"] = engine->config().n_positions;
    }
    Reply(res, 200, {{"object", "list"}, {"data", Json::array({entry})}});
  });
  // Open like gRPC health: SERVING once a model is loaded and while not draining.
  http.Get("/health", [front](const httplib::Request&, httplib::Response& res) {
    const bool serving = front->live() != nullptr && !front->draining();
    Reply(res, serving ? 200 : 503,
          {{"status", serving             ? "ok"
                      : front->draining() ? "draining"
                                          : "loading"}});
  });
  http.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    ApiError e;
    e.http_status = res.status;
    e.message = res.status == 404 ? "no such route" : "bad request";
    Error(res, e);
  });
  if (absl::Status st = s->listener_->Listen(host, port); !st.ok()) return st;
  return s;
}

OpenAiHttpServer::~OpenAiHttpServer() = default;

}  // namespace copyforge
