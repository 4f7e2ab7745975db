// The TextGeneration gRPC service on gRPC's callback API. No thread waits on a request: the
// engine's chunk hand-off (Mailbox::on_ready) schedules the call's reactor on a small delivery
// pool, which takes what is queued (copy guard and PII filter included), writes stream messages
// one at a time (the next from OnWriteDone) and finishes the RPC once every sequence is done. A
// client that goes away is heard through OnCancel, not polled.
#ifndef COPYFORGE_SERVING_GRPC_SERVICE_H_
#define COPYFORGE_SERVING_GRPC_SERVICE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "serving.grpc.pb.h"
#include "serving/frontend.h"

namespace copyforge {

// A few threads running the reactors' delivery work, off the engine thread.
class DeliveryPool {
 public:
  explicit DeliveryPool(int threads);
  ~DeliveryPool();  // runs what is queued, then joins
  void Post(std::function<void()> task);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

class TextGenerationService final : public v1::TextGeneration::CallbackService {
 public:
  TextGenerationService(Frontend* front, int delivery_threads = 2);

  grpc::ServerUnaryReactor* Generate(grpc::CallbackServerContext* context,
                                     const v1::GenerateRequest* request,
                                     v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;
  grpc::ServerUnaryReactor* Detect(grpc::CallbackServerContext* context,
                                   const v1::DetectRequest* request,
                                   v1::DetectResponse* response) override;

 private:
  grpc::Status CheckCaller(const grpc::CallbackServerContext& context);
  Frontend* const front_;
  DeliveryPool pool_;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_GRPC_SERVICE_H_
