// The fault-injecting HTTP proxy for tests (see fault_proxy.h).
#include "fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <iterator>
#include <memory>

namespace kb::testing {

namespace {

constexpr int kTickMs = 50;           // how often blocked loops look at the stop flag
constexpr int kIdleLimitMs = 60'000;  // a silent peer is dropped after this
constexpr size_t kMaxHeadBytes = 64 * 1024;

std::string ToLower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t");
  size_t e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

const char* Reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 408:
      return "Request Timeout";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    default:
      return "Error";
  }
}

// Waits until `fd` is readable; false on timeout, error or `stopping`.
bool WaitReadable(int fd, const std::atomic<bool>& stopping) {
  for (int waited = 0; waited < kIdleLimitMs; waited += kTickMs) {
    if (stopping.load()) return false;
    pollfd p{fd, POLLIN, 0};
    int rc = poll(&p, 1, kTickMs);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
  return false;
}

// One recv() of up to `max` bytes; 0 on EOF, error or stop.
size_t RecvSome(int fd, char* buf, size_t max, const std::atomic<bool>& stopping) {
  if (!WaitReadable(fd, stopping)) return 0;
  ssize_t n;
  do {
    n = recv(fd, buf, max, 0);
  } while (n < 0 && errno == EINTR);
  return n > 0 ? static_cast<size_t>(n) : 0;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Whether the peer has closed (or reset) its side; pending unread data means it has not.
bool PeerClosed(int fd) {
  char c;
  ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

// Makes close() send RST instead of FIN.
void SetResetOnClose(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
}

// The request head (through "\r\n\r\n") in `head`, any body bytes read with it in `rest`.
bool ReadHead(int fd, const std::atomic<bool>& stopping, std::string* head, std::string* rest) {
  std::string data;
  char buf[16 * 1024];
  while (true) {
    size_t end = data.find("\r\n\r\n");
    if (end != std::string::npos) {
      *head = data.substr(0, end + 4);
      *rest = data.substr(end + 4);
      return true;
    }
    if (data.size() > kMaxHeadBytes) return false;
    size_t n = RecvSome(fd, buf, sizeof buf, stopping);
    if (n == 0) return false;
    data.append(buf, n);
  }
}

// Parses the request line and headers of `head` into `out`.
bool ParseHead(const std::string& head, ProxiedRequest* out, std::string* request_line) {
  size_t eol = head.find("\r\n");
  *request_line = head.substr(0, eol);
  size_t sp1 = request_line->find(' ');
  size_t sp2 = request_line->find(' ', sp1 + 1);
  if (sp1 == std::string::npos || sp2 == std::string::npos) return false;
  out->method = request_line->substr(0, sp1);
  out->target = request_line->substr(sp1 + 1, sp2 - sp1 - 1);
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string::npos || next == pos) break;
    std::string line = head.substr(pos, next - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      out->headers.emplace_back(ToLower(Trim(line.substr(0, colon))), Trim(line.substr(colon + 1)));
    }
    pos = next + 2;
  }
  std::string length = out->Header("content-length");
  out->content_length = length.empty() ? 0 : std::stoll(length);
  return true;
}

// The head to send upstream: the same request, but asking the server to close afterwards.
std::string UpstreamHead(const std::string& request_line, const ProxiedRequest& request) {
  std::string head = request_line + "\r\n";
  for (const auto& [name, value] : request.headers) {
    if (name == "connection" || name == "keep-alive" || name == "proxy-connection") continue;
    head += name + ": " + value + "\r\n";
  }
  return head + "connection: close\r\n\r\n";
}

std::string ErrorResponse(const Fault& fault, bool head_request) {
  const std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" +
                           fault.s3_code + "</Code><Message>" + fault.s3_message +
                           "</Message><RequestId>fault-proxy</RequestId></Error>";
  std::string response = "HTTP/1.1 " + std::to_string(fault.http_status) + " " +
                         Reason(fault.http_status) +
                         "\r\nContent-Type: application/xml\r\nConnection: close\r\n";
  response += "Content-Length: " + std::to_string(head_request ? 0 : body.size()) + "\r\n\r\n";
  if (!head_request) response += body;
  return response;
}

}  // namespace

std::string ProxiedRequest::Header(const std::string& name) const {
  for (const auto& [n, v] : headers) {
    if (n == name) return v;
  }
  return "";
}

FaultProxy::FaultProxy(int upstream_port) : upstream_port_(upstream_port) {}

FaultProxy::~FaultProxy() { Stop(); }

std::string FaultProxy::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

Status FaultProxy::Start() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return Status::IOError("proxy: socket failed");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      listen(listen_fd_, 64) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    return Status::IOError("proxy: cannot listen on loopback");
  }
  port_ = ntohs(addr.sin_port);
  accept_thread_ = std::thread([this] { AcceptLoop(); });
  return Status::OK();
}

void FaultProxy::Stop() {
  if (!accept_thread_.joinable()) return;
  stopping_.store(true);
  stop_cv_.notify_all();
  accept_thread_.join();
  close(listen_fd_);
  listen_fd_ = -1;
  std::vector<Worker> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int fd : open_fds_) shutdown(fd, SHUT_RDWR);
    workers.swap(workers_);
  }
  for (Worker& w : workers) w.thread.join();
}

void FaultProxy::AcceptLoop() {
  while (!stopping_.load()) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (poll(&p, 1, kTickMs) <= 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    ReapFinished();
    auto done = std::make_shared<std::atomic<bool>>(false);
    std::lock_guard<std::mutex> lock(mu_);
    workers_.push_back(Worker{std::thread([this, fd, done] {
                                ServeConnection(fd);
                                done->store(true);
                              }),
                              done});
  }
}

void FaultProxy::ReapFinished() {
  std::vector<Worker> finished;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::partition(workers_.begin(), workers_.end(),
                             [](const Worker& w) { return !w.done->load(); });
    std::move(it, workers_.end(), std::back_inserter(finished));
    workers_.erase(it, workers_.end());
  }
  for (Worker& w : finished) w.thread.join();
}

bool FaultProxy::Track(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_.load()) return false;
  open_fds_.insert(fd);
  return true;
}

void FaultProxy::Untrack(int fd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    open_fds_.erase(fd);
  }
  close(fd);
}

bool FaultProxy::SleepUnlessStopped(int ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return !stop_cv_.wait_for(lock, std::chrono::milliseconds(ms),
                            [this] { return stopping_.load(); });
}

bool FaultProxy::TakeFault(const std::string& request_line, Fault* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Fault& f : faults_) {
    if (f.times <= 0) continue;
    if (!f.match.empty() && request_line.find(f.match) == std::string::npos) continue;
    --f.times;
    *out = f;
    return true;
  }
  return false;
}

void FaultProxy::ServeConnection(int client) {
  if (!Track(client)) {
    close(client);
    return;
  }
  std::string head, rest, request_line;
  ProxiedRequest request;
  if (!ReadHead(client, stopping_, &head, &rest) || !ParseHead(head, &request, &request_line)) {
    Untrack(client);
    return;
  }
  Fault fault;
  const bool faulted = TakeFault(request_line, &fault);
  if (faulted) {
    request.fault = fault.kind == FaultKind::kHttpError
                        ? "error " + std::to_string(fault.http_status)
                    : fault.kind == FaultKind::kDelay ? "delay"
                                                      : "reset";
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    requests_.push_back(request);
  }
  char buf[64 * 1024];
  int64_t body_left = request.content_length - static_cast<int64_t>(rest.size());

  if (faulted && fault.kind == FaultKind::kHttpError) {
    while (body_left > 0) {  // read the whole request so the client sees the answer, not a reset
      size_t n = RecvSome(client, buf,
                          static_cast<size_t>(std::min<int64_t>(body_left, sizeof buf)), stopping_);
      if (n == 0) break;
      body_left -= static_cast<int64_t>(n);
    }
    SendAll(client, ErrorResponse(fault, request.method == "HEAD"));
    Untrack(client);
    return;
  }
  if (faulted && fault.kind == FaultKind::kDelay &&
      (!SleepUnlessStopped(fault.delay_ms) || PeerClosed(client))) {
    Untrack(client);  // a client that gave up waiting must not have its request replayed later
    return;
  }
  int upstream = ConnectLoopback(upstream_port_);
  if (upstream < 0 || !Track(upstream)) {
    if (upstream >= 0) close(upstream);
    Untrack(client);
    return;
  }
  // Forward the head and the body (or only its first `body_bytes` for a reset).
  const bool reset = faulted && fault.kind == FaultKind::kResetMidBody;
  int64_t to_forward =
      reset ? std::min(fault.body_bytes, request.content_length) : request.content_length;
  bool ok = SendAll(upstream, UpstreamHead(request_line, request));
  std::string_view first(rest);
  first = first.substr(0, static_cast<size_t>(std::max<int64_t>(0, to_forward)));
  ok = ok && SendAll(upstream, first);
  to_forward -= static_cast<int64_t>(first.size());
  while (ok && to_forward > 0) {
    size_t n = RecvSome(client, buf, static_cast<size_t>(std::min<int64_t>(to_forward, sizeof buf)),
                        stopping_);
    if (n == 0) break;
    ok = SendAll(upstream, std::string_view(buf, n));
    to_forward -= static_cast<int64_t>(n);
  }
  if (reset) {
    SetResetOnClose(upstream);
    Untrack(upstream);
    // Let the server finish with the aborted request before the client can retry (see
    // Fault::settle_ms), then drop the client.
    SleepUnlessStopped(fault.settle_ms);
    SetResetOnClose(client);
    Untrack(client);
    return;
  }
  // Relay the response until the server closes.
  while (ok) {
    size_t n = RecvSome(upstream, buf, sizeof buf, stopping_);
    if (n == 0) break;
    ok = SendAll(client, std::string_view(buf, n));
  }
  Untrack(upstream);
  Untrack(client);
}

void FaultProxy::AddFault(Fault fault) {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.push_back(std::move(fault));
}

void FaultProxy::FailNext(int times, int http_status, std::string s3_code, std::string match) {
  Fault f;
  f.kind = FaultKind::kHttpError;
  f.times = times;
  f.http_status = http_status;
  f.s3_code = std::move(s3_code);
  f.match = std::move(match);
  AddFault(std::move(f));
}

void FaultProxy::DelayNext(int times, int delay_ms, std::string match) {
  Fault f;
  f.kind = FaultKind::kDelay;
  f.times = times;
  f.delay_ms = delay_ms;
  f.match = std::move(match);
  AddFault(std::move(f));
}

void FaultProxy::ResetNext(int times, int64_t body_bytes, std::string match) {
  Fault f;
  f.kind = FaultKind::kResetMidBody;
  f.times = times;
  f.body_bytes = body_bytes;
  f.match = std::move(match);
  AddFault(std::move(f));
}

void FaultProxy::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  faults_.clear();
}

int64_t FaultProxy::request_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(requests_.size());
}

std::vector<ProxiedRequest> FaultProxy::requests() const {
  std::lock_guard<std::mutex> lock(mu_);
  return requests_;
}

void FaultProxy::ClearRequests() {
  std::lock_guard<std::mutex> lock(mu_);
  requests_.clear();
}

}  // namespace kb::testing
