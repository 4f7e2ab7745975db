#include "serving/server.h"

#include <openssl/rand.h>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "protos/bearer_token.h"
#include "protos/grpc_status.h"
#include "serving.grpc.pb.h"
#include "serving/checkpoint_source.h"
#include "serving/frontend.h"
#include "serving/grpc_service.h"
#include "serving/metrics.h"
#include "serving/openai_http.h"
#include "serving/request_prompt.h"
#include "trainer/data/templates.h"
#include "trainer/tokenizer/unicode.h"
#include "trainer/train/train_state.h"
#include "trainer/train/trainer.h"

namespace copyforge {
namespace {

using Clock = std::chrono::steady_clock;
constexpr char kServiceName[] = "copyforge.v1.TextGeneration";

// The training step of a checkpoint written by `copyforge train` (0 when unknown).
int64_t StepOf(const std::string& checkpoint) { return ReadCheckpointStep(checkpoint).value_or(0); }

}  // namespace

class GenerationServer::Impl {
 public:
  explicit Impl(ServerOptions options) : options_(std::move(options)) {}

  ServerOptions options_;
  std::unique_ptr<Frontend> front_;                 // engine, caller checks, conversion, metrics
  std::unique_ptr<TextGenerationService> service_;  // gRPC, on the callback API
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::unique_ptr<MetricsHttpServer> http_;
  std::unique_ptr<OpenAiHttpServer> openai_;  // the OpenAI-compatible API, when on

  absl::Status Reload(const std::string& path) {
    std::lock_guard<std::mutex> lock(reload_mu_);
    auto refuse = [&](const absl::Status& why) {
      std::fprintf(stderr, "serve: refused checkpoint %s: %s; still serving %s\n", path.c_str(),
                   std::string(why.message()).c_str(), front_->live()->stats().checkpoint.c_str());
      refused_.push_back(path);
      return why;
    };
    if (std::filesystem::exists(path + "/" + kManifestFile)) {
      if (absl::Status st = VerifyManifest(path).status(); !st.ok()) return refuse(st);
    }
    auto checkpoint = LoadCheckpoint(path);
    if (!checkpoint.ok()) return refuse(checkpoint.status());
    const int64_t step = StepOf(path);
    if (absl::Status st = front_->live()->Swap(*std::move(checkpoint), path, step); !st.ok()) {
      return refuse(st);
    }
    std::fprintf(stderr,
                 "serve: now serving %s (step %lld); running requests finish on the old "
                 "model\n",
                 path.c_str(), static_cast<long long>(step));
    return absl::OkStatus();
  }

  bool Known(const std::string& path) {
    std::lock_guard<std::mutex> lock(reload_mu_);
    return path == front_->live()->stats().checkpoint ||
           std::find(refused_.begin(), refused_.end(), path) != refused_.end();
  }

  // Loads each new checkpoint the source announces until StopFollowing.
  void Follow() {
    source_->Follow([this](const std::string& path) {
      if (!Known(path)) Reload(path).IgnoreError();
    });
  }

  void StopFollowing() {
    if (source_) source_->Stop();
    if (follower_.joinable()) follower_.join();
  }

  std::unique_ptr<TokenFile> coordinator_token_;  // for following a coordinator
  std::mutex reload_mu_;
  std::vector<std::string> refused_;
  std::unique_ptr<CheckpointSource> source_;  // null unless following a run or a coordinator
  std::thread follower_;
};

GenerationServer::GenerationServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GenerationServer::~GenerationServer() {
  impl_->StopFollowing();
  impl_->openai_.reset();
  if (impl_->server_) impl_->server_->Shutdown(std::chrono::system_clock::now());
  if (impl_->front_ && impl_->front_->live()) impl_->front_->live()->Stop();
}

int GenerationServer::port() const { return impl_->port_; }
int GenerationServer::metrics_port() const { return impl_->http_ ? impl_->http_->port() : 0; }
int GenerationServer::http_port() const { return impl_->openai_ ? impl_->openai_->port() : 0; }

absl::Status GenerationServer::Reload(const std::string& checkpoint) {
  if (impl_->front_->live() == nullptr) return Frontend::NotLoaded();
  return impl_->Reload(checkpoint);
}

void GenerationServer::Drain() {
  impl_->StopFollowing();
  impl_->front_->SetDraining();
  impl_->server_->GetHealthCheckService()->SetServingStatus(false);
  const auto deadline = Clock::now() + std::chrono::duration<double>(impl_->options_.drain_grace_s);
  Engine* engine = impl_->front_->live();
  while (engine != nullptr && Clock::now() < deadline) {
    const EngineStats s = engine->stats();
    if (s.running == 0 && s.queued == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (engine != nullptr) engine->Stop();
  impl_->server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
}

absl::StatusOr<std::unique_ptr<GenerationServer>> GenerationServer::Start(const ServerOptions& o) {
  ServerOptions resolved = o;
  if (!o.coordinator.empty() && o.job.empty()) {
    return absl::InvalidArgumentError("--coordinator needs --job (whose checkpoints to follow)");
  }
  // Trust first: a server that may not run this way fails before it loads anything.
  auto tokens = OpenOptionalTokenFile(o.token_file);
  if (!tokens.ok()) return tokens.status();
  auto coordinator_token = OpenOptionalTokenFile(o.coordinator_token_file);
  if (!coordinator_token.ok()) return coordinator_token.status();
  auto credentials = MakeServerCredentials(o.tls);
  if (!credentials.ok()) return credentials.status();
  const bool authenticated = !o.tls.ca.empty() || *tokens != nullptr;
  for (const auto& [what, host, on] :
       {std::tuple{"serve", o.host, true},
        std::tuple{"serve metrics", o.metrics_host, o.metrics_port >= 0},
        std::tuple{"serve http", o.http_host, o.http_port >= 0}}) {
    if (!on) continue;
    // The metrics port serves no generation, only counters and the probe: TLS is enough there.
    auto exposure =
        CheckExposure(what, host, !o.tls.cert.empty(),
                      authenticated || std::string(what) == "serve metrics", o.insecure);
    if (!exposure.ok()) return exposure.status();
    if (!exposure->empty()) std::fprintf(stderr, "%s\n", exposure->c_str());
  }
  if (o.checkpoint.empty() && o.follow_run.empty() && o.coordinator.empty()) {
    return absl::InvalidArgumentError("--checkpoint, --follow-run or --coordinator is required");
  }
  auto impl = std::make_unique<Impl>(resolved);
  impl->coordinator_token_ = *std::move(coordinator_token);
  auto templates =
      o.templates.empty() ? TemplateSet::Default() : TemplateSet::LoadFile(o.templates);
  if (!templates.ok()) return templates.status();
  FrontendOptions front;
  front.limits = o.limits;
  front.pii_filter = o.pii_filter;
  front.copy_index = o.copy_index;
  front.max_copy_tokens = o.max_copy_tokens;
  front.watermark = o.watermark;
  front.watermark_tasks = {o.watermark_tasks.begin(), o.watermark_tasks.end()};
  if (!o.watermark_key_file.empty()) {
    absl::StatusOr<uint64_t> key = KeyFromFile(o.watermark_key_file);
    if (!key.ok()) return key.status();
    front.watermark.key = *key;
  } else {
    uint64_t key = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&key), sizeof(key)) != 1) {
      return absl::InternalError("cannot draw a random watermark key");
    }
    front.watermark.key = key;
    std::cerr << "serve: no --watermark-key-file: watermarking with a random key; only this "
                 "process's Detect can find it\n";
  }
  auto frontend = Frontend::Create(front, *std::move(templates), *std::move(tokens));
  if (!frontend.ok()) return frontend.status();
  impl->front_ = *std::move(frontend);
  // The ports open before the model loads: probes see NOT_SERVING (not a refused connection)
  // while the server waits for its first checkpoint and loads it.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat(o.host, ":", o.port), *credentials, &impl->port_);
  ApplyServerLimits(o.rpc_limits, &builder);
  impl->service_ = std::make_unique<TextGenerationService>(impl->front_.get());
  builder.RegisterService(impl->service_.get());
  impl->server_ = builder.BuildAndStart();
  if (impl->server_ == nullptr || impl->port_ == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", o.host, ":", o.port));
  }
  impl->server_->GetHealthCheckService()->SetServingStatus(false);
  auto fail = [&impl](absl::Status why) {
    impl->server_->Shutdown(std::chrono::system_clock::now());
    return why;
  };
  if (o.metrics_port >= 0) {
    Impl* raw = impl.get();
    auto http = MetricsHttpServer::Start(
        o.metrics_host, o.metrics_port,
        [raw] { return raw->front_->metrics().Render(raw->front_->Gauges()); },
        [raw] { return !raw->front_->draining(); }, o.tls);
    if (!http.ok()) return fail(http.status());
    impl->http_ = *std::move(http);
  }
  if (o.http_port >= 0) {
    const int threads = std::clamp(o.engine.max_batch + o.engine.max_queue + 4, 8, 256);
    auto openai = OpenAiHttpServer::Start(o.http_host, o.http_port, o.tls, impl->front_.get(),
                                          o.model_name, threads);
    if (!openai.ok()) return fail(openai.status());
    impl->openai_ = *std::move(openai);
  }
  if (o.on_listening) {
    if (absl::Status st = o.on_listening(impl->port_, impl->http_ ? impl->http_->port() : 0,
                                         impl->openai_ ? impl->openai_->port() : 0);
        !st.ok()) {
      return fail(st);
    }
  }
  if (!o.follow_run.empty()) {
    impl->source_ = CheckpointSource::RunDirectory(o.follow_run, o.poll_s);
  } else if (!o.coordinator.empty()) {
    auto source =
        CheckpointSource::Coordinator(o.coordinator, o.job, o.tls, impl->coordinator_token_.get());
    if (!source.ok()) return fail(source.status());
    impl->source_ = *std::move(source);
  }
  if (resolved.checkpoint.empty()) {
    auto first =
        WaitForFirstCheckpoint(*impl->source_, o.wait_checkpoint_s, o.poll_s, o.stop_waiting);
    if (!first.ok()) return fail(first.status());
    resolved.checkpoint = *first;
  }
  if (std::filesystem::exists(resolved.checkpoint + "/" + kManifestFile)) {
    if (absl::Status st = VerifyManifest(resolved.checkpoint).status(); !st.ok()) return fail(st);
  }
  auto checkpoint = LoadCheckpoint(resolved.checkpoint);
  if (!checkpoint.ok()) return fail(checkpoint.status());
  auto engine = Engine::Create(*std::move(checkpoint), o.engine, resolved.checkpoint,
                               StepOf(resolved.checkpoint));
  if (!engine.ok()) return fail(engine.status());
  impl->front_->Publish(*std::move(engine));
  std::fprintf(stderr, "serve: now serving %s (step %lld)\n", resolved.checkpoint.c_str(),
               static_cast<long long>(StepOf(resolved.checkpoint)));
  // Loaded: healthy.
  impl->server_->GetHealthCheckService()->SetServingStatus(true);
  impl->server_->GetHealthCheckService()->SetServingStatus(kServiceName, true);
  if (impl->source_ != nullptr) {
    Impl* raw = impl.get();
    impl->follower_ = std::thread([raw] { raw->Follow(); });
  }
  return std::unique_ptr<GenerationServer>(new GenerationServer(std::move(impl)));
}

}  // namespace copyforge
