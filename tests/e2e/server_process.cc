// Child-process management for the e2e tests (see server_process.h).
#include "server_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef KB_BINARY
#error "KB_BINARY must name the knowledgebeast binary"
#endif

namespace kb::testing {

int PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

ServerProcess::ServerProcess(std::string data_dir, std::string log_path,
                             std::vector<std::string> extra_args)
    : data_dir_(std::move(data_dir)),
      log_path_(std::move(log_path)),
      extra_args_(std::move(extra_args)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
}

bool ServerProcess::Start(int timeout_ms) {
  port_ = PickFreePort();
  std::vector<std::string> args = {KB_BINARY, "serve",     "--data-dir", data_dir_,
                                   "--host",  "127.0.0.1", "--port",     std::to_string(port_)};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  pid_ = fork();
  if (pid_ == 0) {
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    setenv("KB_ADMIN_TOKEN", kE2eAdminToken, 1);
    // No backup schedule unless a test asks for one (by setting KB_BACKUP_INTERVAL in its own
    // environment): a scheduled backup starts at once on a data directory without snapshots
    // and would race with what the test does.
    setenv("KB_BACKUP_INTERVAL", "0", /*overwrite=*/0);
    setenv("KB_VERIFY_INTERVAL", "0", /*overwrite=*/0);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid_ < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return false;  // exited during startup
    }
    auto c = Client();
    c->set_connection_timeout(0, 200000);
    auto r = c->Get("/ready");
    if (r && r->status == 200) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

void ServerProcess::Stop(int sig) {
  if (pid_ <= 0) return;
  kill(pid_, sig);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  pid_ = -1;
}

std::string ServerProcess::Log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::unique_ptr<httplib::Client> ServerProcess::Client() const {
  std::unique_ptr<httplib::Client> c;
  if (tls_ca_file_.empty()) {
    c = std::make_unique<httplib::Client>("127.0.0.1", port_);
  } else {
    c = std::make_unique<httplib::Client>("https://127.0.0.1:" + std::to_string(port_));
    c->set_ca_cert_path(tls_ca_file_.c_str());
    c->enable_server_certificate_verification(true);
  }
  c->set_read_timeout(60, 0);
  c->set_write_timeout(60, 0);
  return c;
}

HttpResp Call(httplib::Client& c, const std::string& method, const std::string& path,
              const std::string& key, const std::string& body, const std::string& content_type) {
  httplib::Headers h;
  if (!key.empty()) h.emplace("Authorization", "Bearer " + key);
  httplib::Result r{nullptr, httplib::Error::Unknown};
  if (method == "GET")
    r = c.Get(path.c_str(), h);
  else if (method == "POST")
    r = c.Post(path.c_str(), h, body, content_type.c_str());
  else if (method == "PUT")
    r = c.Put(path.c_str(), h, body, content_type.c_str());
  else if (method == "PATCH")
    r = c.Patch(path.c_str(), h, body, content_type.c_str());
  else if (method == "DELETE")
    r = c.Delete(path.c_str(), h);
  HttpResp out;
  if (!r) return out;
  out.status = r->status;
  out.raw = r->body;
  out.headers = r->headers;
  out.body = nlohmann::json::parse(r->body, nullptr, false);
  return out;
}

}  // namespace kb::testing
