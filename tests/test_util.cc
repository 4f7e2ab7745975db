#include "tests/test_util.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "trainer/common/file_util.h"

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

}  // namespace copyforge::testing
