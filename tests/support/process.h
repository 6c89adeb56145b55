// Runs a program (the real `knowledgebeast` binary) as a child process, as users and scripts run
// it: judged by its exit code, stdout and stderr. The child's environment is the parent's without
// any KB_* variable (a developer's shell cannot change a test's outcome), plus what the test
// passes.
#pragma once

#include <sys/types.h>

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kb::testing {

struct CliRun {
  int exit_code = -1;  // >= 128: killed by signal (exit_code - 128)
  std::string out;
  std::string err;
  // stdout parsed as JSON (discarded value if it is not JSON).
  nlohmann::json Json() const;
};

using EnvMap = std::map<std::string, std::string>;

// Starts `binary args...` in `cwd` with stdout/stderr to the given files; returns the pid.
pid_t SpawnProcess(const std::string& binary, const std::vector<std::string>& args,
                   const EnvMap& env, const std::string& cwd, const std::string& out_path,
                   const std::string& err_path);
// Waits for the child; its exit code, or 128 + signal.
int WaitProcess(pid_t pid);

// A whole file's bytes ("" if it cannot be read).
std::string ReadWholeFile(const std::string& path);

// Runs to completion. Output files are written in `cwd`.
CliRun RunProcess(const std::string& binary, const std::vector<std::string>& args,
                  const EnvMap& env, const std::string& cwd);

}  // namespace kb::testing
