// The s3rver child process for tests (see s3rver_fixture.h).
#include "s3rver_fixture.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "blob/curl_http.h"
#include "blob/sigv4.h"
#include "common/clock.h"
#include "common/crypto_util.h"

#ifndef KB_SOURCE_DIR
#error "KB_SOURCE_DIR must name the repository root"
#endif

namespace kb::testing {

namespace {

constexpr const char* kS3rverScript =
    KB_SOURCE_DIR "/.cache/s3rver/node_modules/s3rver/bin/s3rver.js";
constexpr int kPortAttempts = 3;

bool CanConnect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int PickFreeLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    socklen_t len = sizeof addr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string UniqueTestPrefix() {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(getpid()) + "-" + std::to_string(counter.fetch_add(1));
}

S3rverProcess::S3rverProcess() = default;

S3rverProcess::~S3rverProcess() { Stop(); }

std::string S3rverProcess::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

std::string S3rverProcess::virtual_host_endpoint() const {
  return "http://s3.localhost:" + std::to_string(port_);
}

blob::S3Options S3rverProcess::Options() const {
  blob::S3Options o;
  o.endpoint = endpoint();
  o.region = "us-east-1";
  o.access_key_id = kS3rverAccessKey;
  o.secret_access_key = kS3rverSecretKey;
  o.path_style = true;
  o.connect_timeout_ms = 2'000;
  o.request_timeout_ms = 20'000;
  o.operation_deadline_ms = 40'000;
  o.max_attempts = 4;
  o.backoff_initial_ms = 10;
  o.backoff_max_ms = 100;
  return o;
}

std::string S3rverProcess::Log() const {
  if (!dir_) return "";
  std::ifstream in(dir_->Sub("s3rver.log"));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status S3rverProcess::Start(const std::vector<std::string>& buckets, int timeout_ms) {
  if (access(kS3rverScript, R_OK) != 0) {
    return Status::FailedPrecondition(std::string("s3rver is not installed at ") + kS3rverScript +
                                      ": run scripts/install-deps.sh");
  }
  Status last;
  for (int i = 0; i < kPortAttempts; ++i) {
    last = StartOnce(buckets, timeout_ms);
    if (last.ok()) return last;
    Stop();
  }
  return last;
}

Status S3rverProcess::StartOnce(const std::vector<std::string>& buckets, int timeout_ms) {
  dir_ = std::make_unique<TempDir>();
  port_ = PickFreeLoopbackPort();
  const std::string log_path = dir_->Sub("s3rver.log");
  std::vector<std::string> args = {"node",
                                   kS3rverScript,
                                   "-d",
                                   dir_->Sub("data"),
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(port_),
                                   "--service-endpoint",
                                   "localhost"};
  for (const std::string& bucket : buckets) {
    args.push_back("--configure-bucket");
    args.push_back(bucket);
  }
  // Everything the child needs is prepared before fork(): between fork and exec only
  // async-signal-safe calls are allowed in a multi-threaded process.
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::string node_options = "NODE_OPTIONS=--openssl-legacy-provider";
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).substr(0, 13) != "NODE_OPTIONS=") envp.push_back(*e);
  }
  envp.push_back(node_options.data());
  envp.push_back(nullptr);
  const int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return Status::IOError("cannot create " + log_path);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    // Dies with the test process, even when that one is killed.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    execvpe(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(log_fd);
  if (pid_ < 0) return Status::IOError("fork failed");
  const int64_t deadline = MonotonicMicros() / 1000 + timeout_ms;
  while (MonotonicMicros() / 1000 < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return Status::Unavailable("s3rver exited during startup (status " + std::to_string(status) +
                                 "); its log:\n" + Log());
    }
    if (CanConnect(port_)) return Status::OK();
    SleepMs(20);
  }
  return Status::Unavailable("s3rver did not accept connections within " +
                             std::to_string(timeout_ms) + " ms; its log:\n" + Log());
}

void S3rverProcess::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  const int64_t deadline = MonotonicMicros() / 1000 + 5'000;
  int status = 0;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (MonotonicMicros() / 1000 > deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status, 0);
      break;
    }
    SleepMs(10);
  }
  pid_ = -1;
}

Status S3rverProcess::CreateBucket(const std::string& name) const {
  const std::string host = "127.0.0.1:" + std::to_string(port_);
  blob::SigV4Request to_sign{"PUT", host, "/" + name, {}, {}, Sha256Hex("")};
  blob::SignedRequest signed_request =
      blob::SignRequest(to_sign, {kS3rverAccessKey, kS3rverSecretKey, ""}, "us-east-1",
                        SystemClock::Default()->NowMillis());
  blob::HttpRequest request;
  request.method = "PUT";
  request.url = endpoint() + "/" + name;
  request.headers = signed_request.headers;
  request.headers.emplace_back("host", host);
  blob::CurlPool pool;
  blob::HttpOutcome outcome = pool.Perform(request);
  if (!outcome.ok()) return Status::IOError("create bucket " + name + ": " + outcome.error);
  const int code = outcome.response.status;
  if (code == 200 || outcome.response.body.find("BucketAlreadyOwnedByYou") != std::string::npos) {
    return Status::OK();
  }
  return Status::IOError("create bucket " + name + ": HTTP " + std::to_string(code) + " " +
                         outcome.response.body);
}

S3rverProcess* SharedS3rver(std::string* error) {
  static std::mutex mu;
  static S3rverProcess* server = nullptr;
  static std::string start_error;
  std::lock_guard<std::mutex> lock(mu);
  if (server == nullptr && start_error.empty()) {
    auto* candidate = new S3rverProcess();
    Status s = candidate->Start();
    if (s.ok()) {
      server = candidate;
      // Stopped at exit; the process is also tied to ours by PR_SET_PDEATHSIG.
      std::atexit([] { delete server; });
    } else {
      start_error = s.ToString();
      delete candidate;
    }
  }
  if (server == nullptr) *error = start_error;
  return server;
}

Result<std::unique_ptr<blob::S3BlobStore>> OpenS3TestStore(const blob::S3Options& options,
                                                           const std::string& bucket) {
  return blob::S3BlobStore::Open(bucket, UniqueTestPrefix(), options);
}

}  // namespace kb::testing
