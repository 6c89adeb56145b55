// A `knowledgebeast serve` child process for end-to-end tests: picks a free loopback port,
// starts the binary with KB_ADMIN_TOKEN in its environment (so the test knows the admin key),
// waits for /ready with a deadline, and kills it on destruction. Its stderr goes to a log file
// that is printed when startup fails.
#pragma once

#include <httplib.h>
#include <sys/types.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kb::testing {

inline constexpr const char* kE2eAdminToken = "e2e-admin-token-0123456789abcdef";

// A port that was free a moment ago (bind to port 0, read it back, close).
int PickFreePort();

class ServerProcess {
 public:
  // `extra_args` are appended after the standard serve flags.
  ServerProcess(std::string data_dir, std::string log_path,
                std::vector<std::string> extra_args = {});
  ~ServerProcess();

  // Speak HTTPS to the server (which must be started with --tls-cert-file/--tls-key-file),
  // verifying its certificate against `ca_file`.
  void UseTls(std::string ca_file) { tls_ca_file_ = std::move(ca_file); }
  // Starts the child and waits until GET /ready answers 200 (false on timeout or early exit).
  bool Start(int timeout_ms = 30000);
  // Sends `signal` and reaps the child. SIGTERM waits for a clean stop (SIGKILL after 15 s).
  void Stop(int signal);
  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string Log() const;

  // A fresh client for this server (httplib clients are not thread-safe: one per thread).
  std::unique_ptr<httplib::Client> Client() const;

 private:
  std::string data_dir_;
  std::string log_path_;
  std::vector<std::string> extra_args_;
  std::string tls_ca_file_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// A parsed response: status 0 means no response.
struct HttpResp {
  int status = 0;
  nlohmann::json body;
  std::string raw;
  httplib::Headers headers;
};
HttpResp Call(httplib::Client& c, const std::string& method, const std::string& path,
              const std::string& key, const std::string& body = "",
              const std::string& content_type = "application/json");

}  // namespace kb::testing
