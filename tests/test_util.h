// Helpers for tests: environment paths, temporary directories, running commands.
#ifndef COPYFORGE_TESTS_TEST_UTIL_H_
#define COPYFORGE_TESTS_TEST_UTIL_H_

#include <string>
#include <vector>

namespace copyforge::testing {

// A path the build configured (source dir, binary, fixtures); the environment variable of the
// same name overrides it.
std::string Env(const char* name);

// A fresh directory removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `command` through /bin/sh, capturing stdout and stderr.
CommandResult RunCommand(const std::string& command);

// Writes a file (the test fails on error).
void WriteTestFile(const std::string& path, const std::string& contents);

// A small prepared corpus for training tests: `records` synthetic Amazon 2023 reviews tokenized
// with the GPT-2 tokenizer into `dir`/shards (20% validation), and `dir`/model.yaml, a 2-layer
// 32-wide GPT-2 with the GPT-2 vocabulary.
void PrepareTinyTrainingSetup(const std::string& dir, int records = 300);

// Test certificates made with the openssl command in `dir`: ca.pem (a CA), server.pem/server.key
// (signed by it, for 127.0.0.1 and localhost), client.pem/client.key (signed by it), and
// rogue.pem/rogue.key (a client certificate from another CA).
void MakeTestCertificates(const std::string& dir);

// Polls for `path` (a port file a server writes) and returns its first line, or "" after
// `seconds`.
std::string WaitForPortFile(const std::string& path, double seconds = 20);

// A background process started from argv (no shell), stdout and stderr appended to `log`.
// Stopped with SIGKILL when the object goes away, unless it already ended.
class Process {
 public:
  Process(const std::vector<std::string>& argv, const std::string& log);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  int pid() const { return pid_; }
  void Signal(int signal) const;
  // Waits for the exit and returns the wait status (or -1 if it was already reaped).
  int Wait();

 private:
  int pid_ = -1;
};

}  // namespace copyforge::testing

#endif  // COPYFORGE_TESTS_TEST_UTIL_H_
