// TLS and tokens end to end: a coordinator with mutual TLS and per-role tokens, a worker that
// trains a job through it, `serve` following the job over TLS with its own token, and the CLI
// clients; plain and unknown clients are refused, and a token is rotated by rewriting its file.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "control.grpc.pb.h"
#include "tests/test_util.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

std::string Pem(const std::string& path) { return *ReadFile(path); }

TEST(TlsTest, MutualTlsAndTokensEndToEnd) {
  testing::TempDir tmp;
  const std::string bin = testing::Env("COPYFORGE_BIN");
  testing::PrepareTinyTrainingSetup(tmp.path(), 120);
  testing::MakeTestCertificates(tmp.path());
  for (const char* role : {"job", "worker", "reader", "client"}) {
    testing::WriteTestFile(tmp.File(std::string(role) + ".token"),
                           std::string("# the ") + role + " token\n" + role + "-s3cret\n");
  }
  const std::string tls_server = " --tls-cert " + tmp.File("server.pem") + " --tls-key " +
                                 tmp.File("server.key") + " --tls-ca " + tmp.File("ca.pem");
  const std::string tls_client = " --tls-cert " + tmp.File("client.pem") + " --tls-key " +
                                 tmp.File("client.key") + " --tls-ca " + tmp.File("ca.pem");
  auto split = [](const std::string& flags) {
    std::vector<std::string> out;
    std::istringstream in(flags);
    for (std::string word; in >> word;) out.push_back(word);
    return out;
  };
  std::vector<std::string> args = {bin,
                                   "coordinator",
                                   "--state-dir",
                                   tmp.File("state"),
                                   "--port-file",
                                   tmp.File("port"),
                                   "--storage-root",
                                   tmp.path(),
                                   "--job-token-file",
                                   tmp.File("job.token"),
                                   "--worker-token-file",
                                   tmp.File("worker.token"),
                                   "--reader-token-file",
                                   tmp.File("reader.token")};
  for (const std::string& w : split(tls_server)) args.push_back(w);
  testing::Process coordinator(args, tmp.File("coordinator.log"));
  const std::string port = testing::WaitForPortFile(tmp.File("port"));
  ASSERT_FALSE(port.empty()) << *ReadFile(tmp.File("coordinator.log"));
  const std::string at = "127.0.0.1:" + port;

  // Refused: a plaintext client, a TLS client without a certificate, one from another CA.
  auto list = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto stub = v1::JobService::NewStub(grpc::CreateChannel(at, credentials));
    grpc::ClientContext c;
    c.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    c.AddMetadata("authorization", "Bearer job-s3cret");
    v1::ListJobsResponse resp;
    return stub->ListJobs(&c, v1::ListJobsRequest(), &resp);
  };
  EXPECT_FALSE(list(grpc::InsecureChannelCredentials()).ok());
  grpc::SslCredentialsOptions no_cert;
  no_cert.pem_root_certs = Pem(tmp.File("ca.pem"));
  EXPECT_FALSE(list(grpc::SslCredentials(no_cert)).ok());
  grpc::SslCredentialsOptions rogue = no_cert;
  rogue.pem_cert_chain = Pem(tmp.File("rogue.pem"));
  rogue.pem_private_key = Pem(tmp.File("rogue.key"));
  EXPECT_FALSE(list(grpc::SslCredentials(rogue)).ok());
  grpc::SslCredentialsOptions good = no_cert;
  good.pem_cert_chain = Pem(tmp.File("client.pem"));
  good.pem_private_key = Pem(tmp.File("client.key"));
  EXPECT_TRUE(list(grpc::SslCredentials(good)).ok());

  // The exec probe: health over mutual TLS needs no token; without the client certificate the
  // handshake fails and so does the probe.
  auto health = testing::RunCommand(bin + " health --address " + at + tls_client);
  EXPECT_EQ(health.exit_code, 0) << health.err;
  EXPECT_NE(health.out.find("SERVING"), std::string::npos) << health.out;
  auto no_cert_probe = testing::RunCommand(bin + " health --timeout 2 --address " + at +
                                           " --tls-ca " + tmp.File("ca.pem"));
  EXPECT_EQ(no_cert_probe.exit_code, 1) << no_cert_probe.out;

  // The CLI over mutual TLS: the right token per role.
  const std::string cli = " --coordinator " + at + tls_client;
  auto denied = testing::RunCommand(bin + " status" + cli);
  EXPECT_NE(denied.err.find("UNAUTHENTICATED"), std::string::npos) << denied.err;
  auto wrong =
      testing::RunCommand(bin + " status" + cli + " --token-file " + tmp.File("worker.token"));
  EXPECT_NE(wrong.err.find("UNAUTHENTICATED"), std::string::npos) << wrong.err;
  testing::WriteTestFile(tmp.File("job.yaml"),
                         "name: tls\ntrain:\n  model: " + tmp.File("model.yaml") +
                             "\n  data: " + tmp.File("shards") + "\n  out: " + tmp.File("run") +
                             "\n  seq_len: 32\n  batch_size: 2\n  steps: 4\n  threads: 1\n"
                             "  eval:\n    interval: 0\n  checkpoint:\n    interval: 2\n");
  auto reader_submits = testing::RunCommand(bin + " submit" + cli + " --token-file " +
                                            tmp.File("reader.token") + " " + tmp.File("job.yaml"));
  EXPECT_NE(reader_submits.err.find("UNAUTHENTICATED"), std::string::npos) << reader_submits.err;
  auto submitted = testing::RunCommand(bin + " submit" + cli + " --token-file " +
                                       tmp.File("job.token") + " " + tmp.File("job.yaml"));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = submitted.out.substr(0, submitted.out.find('\n'));

  // A worker over mutual TLS trains it; `watch` (reader token) follows it to SUCCEEDED.
  std::vector<std::string> worker = {
      bin,    "worker", "--coordinator", at,  "--workdir",    tmp.File("work"),
      "--id", "w1",     "--threads",     "1", "--token-file", tmp.File("worker.token")};
  for (const std::string& w : split(tls_client)) worker.push_back(w);
  testing::Process w1(worker, tmp.File("w1.log"));
  auto watch = testing::RunCommand(bin + " watch" + cli + " --token-file " +
                                   tmp.File("reader.token") + " " + job);
  EXPECT_EQ(watch.exit_code, 0) << watch.err << *ReadFile(tmp.File("w1.log"))
                                << *ReadFile(tmp.File("coordinator.log"));
  EXPECT_NE(watch.out.find("SUCCEEDED"), std::string::npos) << watch.out;

  // serve follows the job over TLS with the reader token and needs the client token itself.
  std::vector<std::string> serve = {bin,
                                    "serve",
                                    "--coordinator",
                                    at,
                                    "--job",
                                    job,
                                    "--coordinator-token-file",
                                    tmp.File("reader.token"),
                                    "--token-file",
                                    tmp.File("client.token"),
                                    "--port-file",
                                    tmp.File("serve.port"),
                                    "--metrics-port",
                                    "0",
                                    "--metrics-port-file",
                                    tmp.File("metrics.port"),
                                    "--threads",
                                    "1"};
  for (const std::string& w : split(tls_server)) serve.push_back(w);
  testing::Process server(serve, tmp.File("serve.log"));
  const std::string serve_port = testing::WaitForPortFile(tmp.File("serve.port"), 60);
  ASSERT_FALSE(serve_port.empty()) << *ReadFile(tmp.File("serve.log"));
  const std::string gen = bin + " generate --server 127.0.0.1:" + serve_port + tls_client +
                          " --prompt Hello --max-new-tokens 3 --temperature 0";
  auto no_token = testing::RunCommand(gen);
  EXPECT_NE(no_token.err.find("UNAUTHENTICATED"), std::string::npos) << no_token.err;
  auto generated = testing::RunCommand(gen + " --token-file " + tmp.File("client.token"));
  EXPECT_EQ(generated.exit_code, 0) << generated.err;
  EXPECT_NE(generated.err.find("/run/checkpoints/step_0000004"), std::string::npos)
      << generated.err;

  // The metrics endpoint speaks the same mutual TLS.
  const std::string metrics =
      "https://127.0.0.1:" + testing::WaitForPortFile(tmp.File("metrics.port"));
  auto probe = testing::RunCommand("curl -sS --cacert " + tmp.File("ca.pem") + " --cert " +
                                   tmp.File("client.pem") + " --key " + tmp.File("client.key") +
                                   " " + metrics + "/healthz");
  EXPECT_EQ(probe.exit_code, 0) << probe.err;
  EXPECT_EQ(probe.out, "ok\n");
  auto no_client_cert =
      testing::RunCommand("curl -sS --cacert " + tmp.File("ca.pem") + " " + metrics + "/healthz");
  EXPECT_NE(no_client_cert.exit_code, 0) << no_client_cert.out;
  auto plain = testing::RunCommand("curl -sS http" + metrics.substr(5) + "/healthz");
  EXPECT_NE(plain.out, "ok\n");

  // Rotation: the file now holds a new token only; the old one stops working at once.
  testing::WriteTestFile(tmp.File("job.token.new"), "job-rotated\n");
  std::filesystem::rename(tmp.File("job.token.new"), tmp.File("job.token"));
  testing::WriteTestFile(tmp.File("old.token"), "job-s3cret\n");
  auto stale =
      testing::RunCommand(bin + " status" + cli + " --token-file " + tmp.File("old.token"));
  EXPECT_NE(stale.err.find("UNAUTHENTICATED"), std::string::npos) << stale.err;
  auto rotated =
      testing::RunCommand(bin + " status" + cli + " --token-file " + tmp.File("job.token"));
  EXPECT_EQ(rotated.exit_code, 0) << rotated.err;
}

}  // namespace
}  // namespace copyforge
