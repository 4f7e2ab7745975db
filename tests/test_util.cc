#include "tests/test_util.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "trainer/common/file_util.h"
#include "trainer/data/prepare.h"
#include "trainer/data/sample_corpus.h"

namespace copyforge::testing {

std::string Env(const char* name) {
  if (const char* v = std::getenv(name)) return v;
  static const std::pair<std::string, std::string> kBuilt[] = {
      {"COPYFORGE_SOURCE_DIR", COPYFORGE_SOURCE_DIR},
      {"COPYFORGE_BIN", COPYFORGE_BIN},
      {"COPYFORGE_GPT2_TOKENIZER", COPYFORGE_GPT2_TOKENIZER},
      {"COPYFORGE_NPM_DIR", COPYFORGE_NPM_DIR}};
  for (const auto& [key, value] : kBuilt) {
    if (key == name) return value;
  }
  ADD_FAILURE() << name << " is not a known test path";
  return "";
}

TempDir::TempDir() {
  std::string templ = (std::filesystem::temp_directory_path() / "copyforge-test-XXXXXX").string();
  char* p = ::mkdtemp(templ.data());
  EXPECT_NE(p, nullptr);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

CommandResult RunCommand(const std::string& command) {
  TempDir tmp;
  const std::string out = tmp.File("stdout"), err = tmp.File("stderr");
  const std::string full = command + " >" + out + " 2>" + err + " </dev/null";
  int status = std::system(full.c_str());
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(out).value_or("");
  r.err = ReadFile(err).value_or("");
  return r;
}

void WriteTestFile(const std::string& path, const std::string& contents) {
  std::ofstream f(path, std::ios::binary);
  f << contents;
  ASSERT_TRUE(f.good()) << path;
}

Process::Process(const std::vector<std::string>& argv, const std::string& log) {
  pid_ = ::fork();
  if (pid_ == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the test
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    std::_Exit(127);
  }
}

Process::~Process() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::kill(pid_, SIGCONT);
    Wait();
  }
}

void Process::Signal(int signal) const {
  if (pid_ > 0) ::kill(pid_, signal);
}

int Process::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

void PrepareTinyTrainingSetup(const std::string& dir, int records) {
  SampleCorpusOptions corpus;
  corpus.records = records;
  ASSERT_TRUE(WriteSampleCorpus(dir + "/data", corpus, false, nullptr).ok());
  PrepareOptions p;
  p.inputs = {{dir + "/data/amazon2023/*", Format::kAuto}};
  p.tokenizer = Env("COPYFORGE_GPT2_TOKENIZER");
  p.out = dir + "/shards";
  p.validation_ratio = 0.2;
  p.show_progress = false;
  ASSERT_TRUE(RunPrepare(p).ok());
  WriteTestFile(
      dir + "/model.yaml",
      "n_layer: 2\nn_head: 2\nn_embd: 32\nn_positions: 64\nvocab_size: 50257\ndropout: 0.0\n");
}

void MakeTestCertificates(const std::string& dir) {
  const std::string script = R"(set -e
cd ")" + dir + R"("
key() { openssl req -x509 -newkey rsa:2048 -nodes -days 2 -keyout "$1.key" -out "$1.pem" \
  -subj "/CN=$1" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null; }
leaf() {  # name ca san
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
key ca
key other-ca
leaf server ca "IP:127.0.0.1,DNS:localhost"
leaf client ca "DNS:client"
leaf rogue other-ca "DNS:rogue"
)";
  const CommandResult r = RunCommand(script);
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

std::string WaitForPortFile(const std::string& path, double seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    std::ifstream in(path);
    std::string line;
    if (in && std::getline(in, line) && !line.empty()) return line;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return "";
}

}  // namespace copyforge::testing
