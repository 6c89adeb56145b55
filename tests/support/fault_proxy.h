// FaultProxy: a loopback HTTP/1.1 proxy to put between a client under test and a real server
// (s3rver), which forwards requests faithfully until told to misbehave: answer with an HTTP
// error carrying an S3 XML error body, wait before forwarding, or reset both connections after
// forwarding part of a request body (a connection dropped mid-upload).
//
// It understands just enough HTTP for that: the request line, headers and a Content-Length body
// (our S3 client always sends Content-Length; chunked request bodies are not supported). Each
// client connection carries one request: the proxy asks the server for "Connection: close" and
// relays the response until the server closes, so the client opens a new connection for its
// next request. Every request is counted and recorded, faulted or not.
//
// Faults are rules matched in the order added; a rule applies to the next `times` requests whose
// request line contains `match` (all requests if empty), then is spent.
//
// Thread-safety: all public methods may be called from any thread while the proxy runs.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/status.h"

namespace kb::testing {

enum class FaultKind {
  kHttpError,     // answer `http_status` with an S3 <Error> body; the server never sees it
  kDelay,         // wait `delay_ms`, then forward
  kResetMidBody,  // forward the headers and `body_bytes` of the body, then reset both sides
};

struct Fault {
  FaultKind kind = FaultKind::kHttpError;
  int times = 1;
  std::string match;  // a substring of the request line ("partNumber=2"); empty: any request
  int http_status = 500;
  std::string s3_code = "InternalError";
  std::string s3_message = "We encountered an internal error. Please try again.";
  int delay_ms = 0;
  int64_t body_bytes = 0;
  // kResetMidBody: the server's side is reset first, the client's this much later. s3rver
  // writes an object's file in place, so an aborted upload still being wound down there can
  // interleave with the client's immediate retry and corrupt the stored object (S3 itself never
  // stores any part of an incomplete body). The pause keeps the tests about the client.
  int settle_ms = 100;
};

// What the proxy saw of one request.
struct ProxiedRequest {
  std::string method;
  std::string target;                                        // path and query as sent
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  int64_t content_length = 0;
  std::string fault;  // "" when forwarded untouched, else "error 503", "delay", "reset"
  std::string Header(const std::string& name) const;
};

class FaultProxy {
 public:
  // Forwards to 127.0.0.1:`upstream_port`.
  explicit FaultProxy(int upstream_port);
  ~FaultProxy();  // Stop()
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on a free loopback port and starts accepting.
  Status Start();
  // Stops accepting, interrupts delays and open connections, joins every thread. Idempotent.
  void Stop();

  int port() const { return port_; }
  std::string endpoint() const;  // "http://127.0.0.1:PORT"

  void AddFault(Fault fault);
  // Shorthands for the common rules.
  void FailNext(int times, int http_status, std::string s3_code, std::string match = "");
  void DelayNext(int times, int delay_ms, std::string match = "");
  void ResetNext(int times, int64_t body_bytes, std::string match = "");
  void ClearFaults();

  int64_t request_count() const;
  std::vector<ProxiedRequest> requests() const;
  void ClearRequests();

 private:
  void AcceptLoop();
  void ServeConnection(int client_fd);
  // The rule for this request, if any (consumes one of its `times`).
  bool TakeFault(const std::string& request_line, Fault* out);
  // Registers a socket so that Stop() can shut it down; false when stopping.
  bool Track(int fd);
  void Untrack(int fd);  // and closes it
  // Sleeps up to `ms`; false when interrupted by Stop().
  bool SleepUnlessStopped(int ms);
  void ReapFinished();

  const int upstream_port_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::thread accept_thread_;
  std::atomic<bool> stopping_{false};

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;
  std::vector<Fault> faults_;             // guarded by mu_
  std::vector<ProxiedRequest> requests_;  // guarded by mu_
  std::set<int> open_fds_;                // guarded by mu_
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  std::vector<Worker> workers_;  // guarded by mu_
};

}  // namespace kb::testing
