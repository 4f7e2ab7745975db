// A worker driven by hand over WorkerService, for tests that act as (or against) a worker
// without running a trainer: register, heartbeat, take an assignment, register checkpoints.
#ifndef COPYFORGE_TESTS_CONTROL_FAKE_WORKER_H_
#define COPYFORGE_TESTS_CONTROL_FAKE_WORKER_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <string>
#include <thread>

#include "control.grpc.pb.h"

namespace copyforge::testing {

class FakeWorker {
 public:
  FakeWorker(v1::WorkerService::Stub* stub, std::string id, std::string token = "")
      : stub_(stub), id_(std::move(id)), token_(std::move(token)) {}

  // Registers (presenting `session`, e.g. to prove a live registration is one's own).
  grpc::Status Register(const std::string& session = "") {
    grpc::ClientContext c;
    Authorize(&c);
    v1::RegisterWorkerRequest req;
    req.set_worker_id(id_);
    req.set_host("127.0.0.1");
    req.set_rendezvous_port(40000);
    req.set_session(session);
    v1::RegisterWorkerResponse resp;
    const grpc::Status st = stub_->RegisterWorker(&c, req, &resp);
    if (st.ok()) {
      incarnation = resp.incarnation();
      this->session = resp.session();
    }
    return st;
  }

  grpc::Status Beat(v1::WorkerPhase phase, const std::string& job, int64_t generation,
                    v1::HeartbeatResponse* resp) {
    grpc::ClientContext c;
    Authorize(&c);
    v1::HeartbeatRequest req;
    req.set_worker_id(id_);
    req.set_incarnation(incarnation);
    req.set_session(session);
    req.set_phase(phase);
    req.set_job_id(job);
    req.set_generation(generation);
    req.set_rendezvous_port(40000);
    return stub_->Heartbeat(&c, req, resp);
  }

  // Heartbeats IDLE until the coordinator starts an assignment (false after ~5 s).
  bool AwaitStart(v1::Assignment* assignment) {
    for (int i = 0; i < 50; ++i) {
      v1::HeartbeatResponse r;
      if (Beat(v1::IDLE, "", 0, &r).ok() && r.action() == v1::HeartbeatResponse::START) {
        *assignment = r.assignment();
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  grpc::Status RegisterCheckpoint(const v1::Assignment& a, const std::string& path, int64_t step,
                                  v1::Checkpoint* out = nullptr) {
    grpc::ClientContext c;
    Authorize(&c);
    v1::RegisterCheckpointRequest req;
    req.set_worker_id(id_);
    req.set_incarnation(incarnation);
    req.set_session(session);
    req.mutable_checkpoint()->set_job_id(a.job_id());
    req.mutable_checkpoint()->set_generation(a.generation());
    req.mutable_checkpoint()->set_path(path);
    req.mutable_checkpoint()->set_step(step);
    v1::Checkpoint ignored;
    return stub_->RegisterCheckpoint(&c, req, out != nullptr ? out : &ignored);
  }

  int64_t incarnation = 0;
  std::string session;

 private:
  void Authorize(grpc::ClientContext* c) const {
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token_.empty()) c->AddMetadata("authorization", "Bearer " + token_);
  }

  v1::WorkerService::Stub* stub_;
  std::string id_;
  std::string token_;
};

}  // namespace copyforge::testing

#endif  // COPYFORGE_TESTS_CONTROL_FAKE_WORKER_H_
