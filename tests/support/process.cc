#include "process.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string_view>

extern char** environ;

namespace kb::testing {

std::string ReadWholeFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {

std::vector<std::string> ChildEnvironment(const EnvMap& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "KB_", 3) == 0) continue;
    // A variable the test passes replaces the parent's (getenv would find the first of two).
    const std::string_view entry(*e);
    if (extra.count(std::string(entry.substr(0, entry.find('='))))) continue;
    env.emplace_back(*e);
  }
  for (const auto& [k, v] : extra) env.push_back(k + "=" + v);
  return env;
}

}  // namespace

nlohmann::json CliRun::Json() const { return nlohmann::json::parse(out, nullptr, false); }

pid_t SpawnProcess(const std::string& binary, const std::vector<std::string>& args,
                   const EnvMap& env, const std::string& cwd, const std::string& out_path,
                   const std::string& err_path) {
  std::vector<std::string> argv_s = {binary};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s = ChildEnvironment(env);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0 || chdir(cwd.c_str()) != 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  return pid;
}

int WaitProcess(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

CliRun RunProcess(const std::string& binary, const std::vector<std::string>& args,
                  const EnvMap& env, const std::string& cwd) {
  const std::string out = cwd + "/.cli-stdout", err = cwd + "/.cli-stderr";
  CliRun r;
  r.exit_code = WaitProcess(SpawnProcess(binary, args, env, cwd, out, err));
  r.out = ReadWholeFile(out);
  r.err = ReadWholeFile(err);
  return r;
}

}  // namespace kb::testing
