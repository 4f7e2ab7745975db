// Helpers for tests: environment paths, temporary directories, running commands.
#ifndef COPYFORGE_TESTS_TEST_UTIL_H_
#define COPYFORGE_TESTS_TEST_UTIL_H_

#include <string>

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

}  // namespace copyforge::testing

#endif  // COPYFORGE_TESTS_TEST_UTIL_H_
