// HttpTransport: the connection layer of the API server. It owns sockets, HTTP/1.1 framing,
// deadlines and connection caps; it knows nothing of routes. Requests that pass it are handed,
// one complete request at a time, to a handler running on a bounded worker pool.
//
// Why: cpp-httplib's server gives every connection a worker thread for its whole life, so eight
// idle connections stopped an eight-thread server (issue 17). Here connections are served by one
// event loop (Boost.Asio + Boost.Beast from Debian): an idle or slow client costs a socket and a
// few hundred bytes, never a worker. A worker is taken only once a request has fully arrived, and
// given back before its response is written.
//
// What a connection meets (docs/API.md, "Connections"):
//   - a cap on open connections, in total and per client address: beyond it the connection gets
//     503 + Retry-After and is closed, without a worker ever seeing it;
//   - an idle deadline for the first byte of each request (keep-alive included), then a deadline
//     for the whole header block, then for the body a deadline per read plus a minimum average
//     rate after a grace period; a deadline that passes answers 408 and closes;
//   - strict framing (RFC 9112 §6): a Content-Length that is not one plain decimal, a
//     Transfer-Encoding other than a lone final "chunked", both headers at once, whitespace
//     before a colon, no Host on HTTP/1.1, control characters in a header value: 400 and close;
//     a Content-Length over the limit: 413 before the body is read;
//   - pipelined requests are answered in order, one at a time;
//   - "Expect: 100-continue" is answered before the body is read.
// Refusals decided here are rendered by the server's ErrorRenderer (JSON error bodies, metrics,
// access log, audit) so that they look like every other error.
//
// Thread-safety: Start/Stop/Wait/port/counters may be called from any thread. The handler runs
// on worker threads, several at once; the renderer runs on the event-loop thread, or on a worker
// for a malformed multipart body (which is parsed there).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/status.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace kb::api {

inline constexpr int64_t kDefaultMaxConnections = 4096;
inline constexpr int64_t kDefaultMaxConnectionsPerAddress = 256;

struct TransportLimits {
  int64_t max_body_bytes = 64LL * 1024 * 1024;
  // Open connections, in total and from one client address (0 = no per-address cap).
  int64_t max_connections = kDefaultMaxConnections;
  int64_t max_connections_per_address = kDefaultMaxConnectionsPerAddress;
  // Request line + header fields; beyond it 431 (or 414 when the request line alone is longer).
  uint32_t max_header_bytes = 16 * 1024;
  // Waiting for the first byte of a request (a new connection, or the next request on a kept-alive
  // one): the connection is closed without a response.
  int64_t idle_timeout_ms = 30'000;
  // From the first byte of a request to the end of its header block, TLS handshake included.
  int64_t header_timeout_ms = 10'000;
  // The body: no read may wait longer than this, and after body_grace_ms the average rate must be
  // at least body_min_bytes_per_second.
  int64_t body_read_timeout_ms = 10'000;
  int64_t body_grace_ms = 10'000;
  int64_t body_min_bytes_per_second = 16 * 1024;
  // Writing one response: this, plus its body's size at body_min_bytes_per_second (a client that
  // stops reading loses the connection; a slow one downloading a large body does not).
  int64_t write_timeout_ms = 30'000;
  int64_t max_requests_per_connection = 1000;
  // Stop(): how long in-flight requests may take to finish before connections are cut.
  int64_t drain_timeout_ms = 10'000;
};

// What the transport has seen, for metrics (read with relaxed loads).
struct TransportCounters {
  std::atomic<int64_t> open_connections{0};
  std::atomic<int64_t> accepted{0};
  std::atomic<int64_t> rejected_total_cap{0};    // 503: too many connections
  std::atomic<int64_t> rejected_address_cap{0};  // 503: too many from one address
  std::atomic<int64_t> idle_timeouts{0};         // closed while waiting for a request
  std::atomic<int64_t> header_timeouts{0};       // 408: header block too slow
  std::atomic<int64_t> body_timeouts{0};         // 408: body too slow
  std::atomic<int64_t> bad_requests{0};          // 400/414/431: framing refused
  std::atomic<int64_t> too_large{0};             // 413 decided from the headers or while reading
};

class HttpTransport {
 public:
  // Serves one complete request; fills the response (status, headers, body).
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // Renders a refusal the transport decided: `res.status` is set (400, 408, 413, 414, 431, 503);
  // `reason` is a sentence for the error message. `req` holds what was parsed (maybe nothing).
  using ErrorRenderer =
      std::function<void(const httplib::Request&, httplib::Response&, const std::string& reason)>;

  // Binds host:port (0 = ephemeral) and starts serving: one event-loop thread and `workers`
  // handler threads. `tls` (may be null) makes it HTTPS; it must outlive the transport.
  // IOError naming the address when it cannot bind (SO_REUSEADDR, never SO_REUSEPORT: a second
  // server on the same port is an error, not a silent split).
  static Result<std::unique_ptr<HttpTransport>> Start(const std::string& host, int port,
                                                      int workers, const TransportLimits& limits,
                                                      boost::asio::ssl::context* tls,
                                                      Handler handler, ErrorRenderer renderer);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  int port() const;
  // Stops accepting, closes idle connections, lets in-flight requests finish (up to
  // drain_timeout_ms), then stops. Idempotent.
  void Stop();
  // Blocks until Stop() has finished.
  void Wait();
  const TransportCounters& counters() const;

  class Impl;

 private:
  explicit HttpTransport(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Raises this process's soft limit on open files to its hard limit (each connection is a file
// descriptor). Returns the soft limit in force afterwards.
int64_t RaiseOpenFileLimit();

}  // namespace kb::api
