// `copyforge serve` (the TextGeneration server) and the client side of `generate --server`.
#include <grpcpp/grpcpp.h>
#include <malloc.h>
#include <signal.h>

#include <cstdio>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/security_flags.h"
#include "protos/bearer_token.h"
#include "protos/grpc_status.h"
#include "serving.grpc.pb.h"
#include "serving/server.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/device/device.h"

namespace copyforge {
namespace {

struct ServeFlags {
  ServerOptions options;
  std::string port_file;
  std::string metrics_port_file;
  std::string http_port_file;
};

absl::Status RunServe(const ServeFlags& f) {
  // Every decode step allocates and frees the same few megabytes (logits, sampling buffers);
  // keep them on the heap instead of a fresh mmap + page faults each time (glibc's default).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  sigset_t signals = BlockStopSignals();
  // A device this build or machine cannot offer fails before any checkpoint is awaited or read.
  if (auto device = ResolveDevice(f.options.engine.device, "--device"); !device.ok()) {
    return device.status();
  }
  ServerOptions options = f.options;
  options.stop_waiting = [&signals] {
    sigset_t pending;
    if (sigpending(&pending) != 0) return false;
    for (int s : {SIGTERM, SIGINT}) {
      if (sigismember(&signals, s) && sigismember(&pending, s)) return true;
    }
    return false;
  };
  options.on_listening = [&f](int port, int metrics_port, int http_port) {
    std::fprintf(stderr, "serve: listening on %s:%d (health NOT_SERVING until a model loads)\n",
                 f.options.host.c_str(), port);
    if (http_port > 0) {
      std::fprintf(stderr, "serve: OpenAI-compatible API on http%s://%s:%d/v1\n",
                   f.options.tls.cert.empty() ? "" : "s", f.options.http_host.c_str(), http_port);
      if (!f.http_port_file.empty()) {
        CF_RETURN_IF_ERROR(WriteFileAtomic(f.http_port_file, std::to_string(http_port) + "\n"));
      }
    }
    if (metrics_port <= 0) return absl::OkStatus();
    std::fprintf(stderr, "serve: metrics on http://%s:%d/metrics\n", f.options.metrics_host.c_str(),
                 metrics_port);
    if (f.metrics_port_file.empty()) return absl::OkStatus();
    return WriteFileAtomic(f.metrics_port_file, std::to_string(metrics_port) + "\n");
  };
  auto server = GenerationServer::Start(options);
  if (!server.ok()) return server.status();
  std::fprintf(stderr, "serve: model loaded; health SERVING on %s:%d\n", f.options.host.c_str(),
               (*server)->port());
  if (!f.port_file.empty()) {
    CF_RETURN_IF_ERROR(WriteFileAtomic(f.port_file, std::to_string((*server)->port()) + "\n"));
  }
  const int signal = WaitForSignal(signals);
  std::fprintf(stderr, "serve: %s: draining (up to %.0f s), then exiting\n", strsignal(signal),
               f.options.drain_grace_s);
  (*server)->Drain();
  return absl::OkStatus();
}

const char* Reason(v1::FinishReason r) {
  switch (r) {
    case v1::LENGTH:
      return "length";
    case v1::EOS:
      return "eos";
    case v1::STOP_SEQUENCE:
      return "stop_sequence";
    case v1::COPY_LIMIT:
      return "copy_limit";
    default:
      return "unspecified";
  }
}

}  // namespace

absl::Status RunRemoteGenerate(const RemoteGenerateArgs& a) {
  auto channel = OpenChannel(a.server, a.tls);
  if (!channel.ok()) return channel.status();
  auto token = OpenOptionalTokenFile(a.token_file);
  if (!token.ok()) return token.status();
  auto stub = v1::TextGeneration::NewStub(*channel);
  v1::GenerateRequest req;
  if (!a.task.empty()) {
    CF_RETURN_IF_ERROR(SetTaskInput(a.task, a.fields, &req));
  } else {
    req.set_prompt(a.prompt.empty() ? "<|endoftext|>" : a.prompt);
  }
  req.mutable_sampling()->set_temperature(static_cast<float>(a.sampling.temperature));
  req.mutable_sampling()->set_top_k(static_cast<int32_t>(a.sampling.top_k));
  req.mutable_sampling()->set_top_p(static_cast<float>(a.sampling.top_p));
  req.mutable_sampling()->set_repetition_penalty(static_cast<float>(a.sampling.repetition_penalty));
  req.mutable_sampling()->set_seed(a.sampling.seed);
  req.mutable_stopping()->set_max_new_tokens(static_cast<uint32_t>(a.max_new_tokens));
  req.mutable_stopping()->set_ignore_eos(a.no_stop);
  for (const std::string& s : a.stop) req.mutable_stopping()->add_stop(s);
  if (!a.response_format.empty() && a.response_format[0] == '@') {
    CF_ASSIGN_OR_RETURN(std::string schema, ReadFile(a.response_format.substr(1)));
    req.mutable_response_format()->set_json_schema(schema);
  } else if (!a.response_format.empty()) {
    req.mutable_response_format()->set_named_schema(a.response_format);
  }
  if (!a.watermark.empty()) {
    req.mutable_watermark()->set_mode(a.watermark == "on" ? v1::WatermarkOptions::ON
                                                          : v1::WatermarkOptions::OFF);
  }
  grpc::ClientContext context;
  AttachBearer(token->get(), &context);
  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  auto fail = [&](const grpc::Status& s) { return FromGrpc(s, "Generate at " + a.server); };
  if (a.stream) {
    auto reader = stub->GenerateStream(&context, req);
    v1::GenerateStreamResponse m;
    while (reader->Read(&m)) {
      std::fwrite(m.text().data(), 1, m.text().size(), stdout);
      std::fflush(stdout);
      if (m.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
        std::fprintf(stderr, "\n[%s; %u prompt + %u generated tokens; first token %.3f s]",
                     Reason(m.finish_reason()), m.usage().prompt_tokens(),
                     m.usage().generated_tokens(), m.timings().time_to_first_token_s());
      }
    }
    if (grpc::Status s = reader->Finish(); !s.ok()) return fail(s);
  } else {
    v1::GenerateResponse resp;
    if (grpc::Status s = stub->Generate(&context, req, &resp); !s.ok()) return fail(s);
    const v1::Completion& c = resp.completions(0);
    std::fwrite(c.text().data(), 1, c.text().size(), stdout);
    std::fflush(stdout);
    std::fprintf(stderr,
                 "\n[%s; %u prompt + %u generated tokens; %.3f s; longest copy from training "
                 "%u tokens; checkpoint %s]",
                 Reason(c.finish_reason()), resp.usage().prompt_tokens(),
                 resp.usage().generated_tokens(), resp.timings().total_s(),
                 c.longest_copied_tokens(), resp.checkpoint().c_str());
  }
  std::printf("\n");
  return absl::OkStatus();
}

void RegisterServe(CLI::App& app, CommandFn* run) {
  auto f = std::make_shared<ServeFlags>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a checkpoint over gRPC (TextGeneration, health, reflection)");
  EngineOptions& e = f->options.engine;
  cmd->add_option("--checkpoint", f->options.checkpoint,
                  "Checkpoint directory (default: the newest of --follow-run / --job)");
  cmd->add_option("--follow-run", f->options.follow_run,
                  "Hot reload: serve the newest checkpoint under RUN_DIR/checkpoints as they come");
  cmd->add_option("--wait-checkpoint", f->options.wait_checkpoint_s,
                  "Seconds to wait for the first checkpoint of --follow-run / --job (and for the "
                  "coordinator to answer) before giving up")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--coordinator", f->options.coordinator,
                  "Hot reload: follow WatchCheckpoints of --job at this coordinator");
  cmd->add_option("--job", f->options.job, "The job whose checkpoints to serve");
  cmd->add_option(
      "--templates", f->options.templates,
      "Templates for task inputs (default: the built-in configs/templates/ecommerce.yaml)");
  cmd->add_option("--port", f->options.port, "gRPC port (0: an ephemeral one)")
      ->capture_default_str();
  cmd->add_option("--host", f->options.host,
                  "Address to listen on (not loopback: needs TLS and tokens, or --insecure)")
      ->capture_default_str();
  cmd->add_option("--metrics-host", f->options.metrics_host, "Address of the metrics endpoint")
      ->capture_default_str();
  cmd->add_option("--port-file", f->port_file,
                  "Write the bound port to this file once the model is loaded (SERVING)");
  AddTlsFlags(cmd, &f->options.tls, /*server=*/true);
  cmd->add_option("--token-file", f->options.token_file,
                  "Bearer tokens (one per line, re-read on change) TextGeneration callers must "
                  "send; health and reflection stay open");
  cmd->add_option("--coordinator-token-file", f->options.coordinator_token_file,
                  "The coordinator's reader (or job) token, for --coordinator");
  cmd->add_flag("--insecure", f->options.insecure,
                "Allow a non-loopback --host without TLS and authentication");
  cmd->add_option("--max-batch", e.max_batch, "KV cache slots (sequences decoded together)")
      ->capture_default_str();
  cmd->add_option("--max-queue", e.max_queue, "Waiting requests before RESOURCE_EXHAUSTED")
      ->capture_default_str();
  cmd->add_option("--max-prompt-tokens", e.max_prompt_tokens, "0: n_positions - 1")
      ->capture_default_str();
  cmd->add_option("--max-new-tokens", e.max_new_tokens, "Most tokens a request may ask for")
      ->capture_default_str();
  cmd->add_option("--default-max-new-tokens", e.default_max_new_tokens,
                  "When a request does not say")
      ->capture_default_str();
  cmd->add_option("--max-batch-tokens", e.max_batch_tokens,
                  "KV token budget over running requests (0: slots x n_positions)")
      ->capture_default_str();
  cmd->add_option("--threads", e.threads, "Intra-op threads (0: one per core)")
      ->capture_default_str();
  cmd->add_option("--prefill-chunk", e.prefill_chunk,
                  "Prompt tokens prefilled per step, interleaved with decoding")
      ->capture_default_str();
  cmd->add_option("--prefix-cache-tokens", e.prefix_cache_tokens,
                  "Prompt-prefix tokens whose keys and values are kept for later requests that "
                  "start the same way (0: off; -1: 4 x n_positions)")
      ->capture_default_str();
  cmd->add_option("--prefix-block-tokens", e.prefix_block_tokens,
                  "Tokens per prefix-cache block (a prefix is reused in whole blocks)")
      ->capture_default_str();
  cmd->add_option("--dtype", e.dtype,
                  "Weights and KV cache: float32, bfloat16, int8 (weight-only, per-column scales, "
                  "CPU), or auto (bfloat16 on a GPU or with avx512_bf16)")
      ->capture_default_str();
  AddDeviceOption(cmd, &e.device);
  RequestLimits& l = f->options.limits;
  cmd->add_option("--max-prompt-bytes", l.max_prompt_bytes,
                  "Prompt text (or task-input fields, or Tokenize text) a request may carry")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-stop-sequences", l.max_stop_sequences, "Stop sequences per request")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--max-stop-bytes", l.max_stop_bytes, "Bytes of each stop sequence")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-memory-gb", e.max_memory_gb,
                  "Weights + KV pool budget in GB; a larger --max-batch x n_positions is refused "
                  "at start-up (0: 90% of memory on the CPU)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--metrics-port", f->options.metrics_port,
                  "HTTP port for /metrics and /healthz (-1: off, 0: an ephemeral one)")
      ->capture_default_str();
  cmd->add_flag(
      "--no-pii-filter", [f](int64_t) { f->options.pii_filter = false; },
      "Return generated text without passing it through the PII scrubber (on by default: "
      "e-mail addresses, URLs and phone numbers are replaced, stream-safe)");
  cmd->add_option("--copy-index", f->options.copy_index,
                  "The training split's copy index (prepare's ngrams.bin): every response reports "
                  "its longest run copied verbatim from a training text");
  cmd->add_option("--max-copy-tokens", f->options.max_copy_tokens,
                  "Cut a sequence whose verbatim run from the training split grows past this "
                  "(finish reason COPY_LIMIT; 0: report only)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--watermark-key-file", f->options.watermark_key_file,
                  "Secret the watermark key is derived from (none: a random key for this "
                  "process, so only its Detect finds the watermark)");
  cmd->add_option("--watermark-gamma", f->options.watermark.gamma,
                  "Watermark: the green fraction of the vocabulary")
      ->capture_default_str();
  cmd->add_option("--watermark-delta", f->options.watermark.delta,
                  "Watermark: the bias added to green logits")
      ->capture_default_str();
  cmd->add_option("--watermark-z", f->options.watermark.z_threshold,
                  "Watermark detection: a z-score above this is reported as watermarked")
      ->capture_default_str();
  cmd->add_option("--watermark-tasks", f->options.watermark_tasks,
                  "Tasks watermarked unless a request says otherwise (review, "
                  "product_description, blog_post, prompt; 'none' for none)")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--http-port", f->options.http_port,
                  "OpenAI-compatible HTTP API (/v1/completions, /v1/models, /health): -1 off, 0 "
                  "an ephemeral port")
      ->capture_default_str();
  cmd->add_option("--http-host", f->options.http_host, "Address of the HTTP API")
      ->capture_default_str();
  cmd->add_option("--http-port-file", f->http_port_file,
                  "Write the HTTP API's port here (as soon as it listens)");
  cmd->add_option("--model-name", f->options.model_name,
                  "The model id the HTTP API serves (GET /v1/models; requests may name it)")
      ->capture_default_str();
  cmd->add_option("--metrics-port-file", f->metrics_port_file,
                  "Write the metrics port here (as soon as it listens)");
  cmd->add_option("--drain-grace", f->options.drain_grace_s,
                  "Seconds in-flight requests may take after SIGTERM")
      ->capture_default_str();
  cmd->callback([f, run] { *run = [f] { return ReportStatus("serve", RunServe(*f)); }; });
}

}  // namespace copyforge
