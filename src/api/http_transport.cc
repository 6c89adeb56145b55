// The connection layer (see http_transport.h): Boost.Asio event loop, Boost.Beast HTTP/1.1
// parser, our deadlines, caps and framing rules, a worker pool for handlers.
//
// Threads: one event-loop thread runs every socket operation, timer and renderer call, so a
// session's state needs no lock; handlers run on the worker pool and hand their response back to
// the event loop with asio::post. The connection counts (total, per address) and the session set
// are touched from both (a session may die on a worker), so they sit behind a mutex.
#include "api/http_transport.h"

#include <httplib.h>
#include <sys/resource.h>

#include <array>
#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <type_traits>

#include "api/multipart.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "common/thread_annotations.h"

namespace kb::api {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr size_t kFirstReadBytes = 1024;
constexpr size_t kMaxEmptyLineBytes = 4;  // CR/LF bytes ignored before a request line
// How long a refused connection is drained after its response so that the client reads the
// response instead of a reset ("lingering close").
constexpr int64_t kLingerMs = 2'000;
constexpr size_t kLingerMaxBytes = 1 << 20;
// A connection refused at a cap is drained for at most this long, and at most this many at once.
constexpr int64_t kRejectLingerMs = 1'000;
constexpr int64_t kMaxLingeringRejects = 256;

// --- strict framing (RFC 9112 §5, §6) -----------------------------------------------------

bool AllDigits(std::string_view s) {
  if (s.empty() || s.size() > 19) return false;  // 19 digits always fit in uint64
  for (char c : s) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

bool HasControlCharacter(std::string_view v) {
  for (unsigned char c : v) {
    if ((c < 0x20 && c != '\t') || c == 0x7f) return true;
  }
  return false;
}

// Empty when the header block frames a request we accept, else why not.
std::string FramingProblem(const http::request<http::string_body>& req) {
  int content_length = 0, transfer_encoding = 0, host = 0;
  for (const auto& f : req) {
    const std::string_view name(f.name_string().data(), f.name_string().size());
    const std::string_view value(f.value().data(), f.value().size());
    if (HasControlCharacter(value)) {
      return "a control character in the value of header '" + std::string(name) + "'";
    }
    switch (f.name()) {
      case http::field::content_length:
        ++content_length;
        if (!AllDigits(value)) return "Content-Length '" + std::string(value) + "' is not a size";
        break;
      case http::field::transfer_encoding:
        ++transfer_encoding;
        if (ToLowerAscii(value) != "chunked") {
          return "Transfer-Encoding '" + std::string(value) + "' (only 'chunked' is accepted)";
        }
        break;
      case http::field::host:
        ++host;
        break;
      default:
        break;
    }
  }
  if (content_length > 1) return "more than one Content-Length header";
  if (transfer_encoding > 1) return "more than one Transfer-Encoding header";
  if (content_length && transfer_encoding) return "both Content-Length and Transfer-Encoding";
  if (req.version() >= 11 && host != 1) {
    return host == 0 ? "HTTP/1.1 request without a Host header" : "more than one Host header";
  }
  return "";
}

// The status and message for a Beast parse error (413 has none: the renderer words it).
// `start_line_parsed`: the parser got past the request line (it consumes that line as soon as it
// is whole).
std::pair<int, std::string> ParseErrorStatus(const beast::error_code& ec, bool start_line_parsed) {
  if (ec == http::error::body_limit) return {413, ""};
  if (ec == http::error::header_limit) {
    // The request line alone did not fit: the URI is what is too long.
    if (!start_line_parsed) return {414, "request URI too long"};
    return {431, "request header fields too large"};
  }
  return {400, "malformed HTTP request (" + ec.message() + ")"};
}

// Splits an origin-form (or absolute-form) target into a decoded path and its query parameters.
bool FillTarget(std::string_view target, httplib::Request* out) {
  if (target.rfind("http://", 0) == 0 || target.rfind("https://", 0) == 0) {
    const size_t slash = target.find('/', target.find("//") + 2);
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  if (target.empty() || target.front() != '/') return false;
  out->target = std::string(target);
  const size_t q = target.find('?');
  out->path = httplib::detail::decode_url(std::string(target.substr(0, q)), false);
  if (q != std::string_view::npos) {
    httplib::detail::parse_query_text(std::string(target.substr(q + 1)), out->params);
  }
  return true;
}

void FillHeaders(const http::request<http::string_body>& req, httplib::Request* out) {
  out->method = std::string(req.method_string());
  out->version = req.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
  for (const auto& f : req) {
    out->headers.emplace(std::string(f.name_string()), std::string(f.value()));
  }
}

// One plain response written by the transport itself (no worker, no renderer): 503 when full.
const std::string& BusyResponse() {
  static const std::string kBusy = [] {
    const std::string body =
        R"({"error":{"code":"unavailable","message":"too many connections; retry shortly"}})";
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
           "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }();
  return kBusy;
}

}  // namespace

// --------------------------------------------------------------------------------------------

class HttpTransport::Impl {
 public:
  Impl(int workers, const TransportLimits& limits, asio::ssl::context* tls, Handler handler,
       ErrorRenderer renderer)
      : limits_(limits),
        tls_(tls),
        handler_(std::move(handler)),
        renderer_(std::move(renderer)),
        acceptor_(io_),
        pool_(static_cast<size_t>(workers)) {}

  Status Bind(const std::string& host, int port);
  void Run();
  void Stop();
  void Wait();

  // Called by sessions (event-loop thread unless noted).
  const TransportLimits& limits() const { return limits_; }
  TransportCounters& counters() { return counters_; }
  asio::io_context& io() { return io_; }
  asio::thread_pool& pool() { return pool_; }
  const Handler& handler() const { return handler_; }
  void Render(const httplib::Request& req, httplib::Response& res, const std::string& reason) {
    try {
      renderer_(req, res, reason);
    } catch (...) {
      res.body = R"({"error":{"code":"internal","message":"error while rendering an error"}})";
    }
  }
  bool stopping() const { return stopping_.load(); }
  void SessionClosed(class SessionBase* s, const std::string& address)  // any thread
      EXCLUDES(mu_);
  int port() const { return port_; }

 private:
  void Accept();
  void OnAccept(beast::error_code ec, tcp::socket socket);
  // True if the address is under its cap; counts it.
  bool Admit(const std::string& address, bool* total_cap) EXCLUDES(mu_);
  struct RejectedConnection {
    RejectedConnection(tcp::socket s, asio::io_context& io) : socket(std::move(s)), timer(io) {}
    tcp::socket socket;
    asio::steady_timer timer;
    std::array<char, 4096> buffer{};
    size_t drained = 0;
  };
  void Reject(tcp::socket socket);
  void DrainRejected(std::shared_ptr<RejectedConnection> r);
  int64_t lingering_rejects_ = 0;  // event-loop thread only

  // Declared before the event loop on purpose: handlers still queued in io_ when it is destroyed
  // hold sessions, whose destructors count themselves out here.
  TransportLimits limits_;
  asio::ssl::context* tls_;
  Handler handler_;
  ErrorRenderer renderer_;
  TransportCounters counters_;
  std::atomic<bool> stopping_{false};
  Mutex mu_;  // per-address counts and the session set (sessions may die on a worker)
  std::map<std::string, int64_t> per_address_ GUARDED_BY(mu_);
  std::map<SessionBase*, std::weak_ptr<SessionBase>> sessions_ GUARDED_BY(mu_);
  Mutex stop_mu_;
  CondVar stopped_cv_;
  bool stopped_ GUARDED_BY(stop_mu_) = false;

  asio::io_context io_{1};
  tcp::acceptor acceptor_;
  asio::steady_timer accept_retry_{io_};
  asio::thread_pool pool_;
  std::thread loop_;
  int port_ = 0;
};

// The part of a session the transport sees, whatever the stream type.
class SessionBase : public std::enable_shared_from_this<SessionBase> {
 public:
  virtual ~SessionBase() = default;
  // Event-loop thread: close if no request is being handled or written.
  virtual void CloseIfIdle() = 0;
  virtual void ForceClose() = 0;
};

namespace {

template <class Stream>
class Session final : public SessionBase {
 public:
  Session(HttpTransport::Impl* t, tcp::socket&& socket, asio::ssl::context* tls,
          std::string address, uint16_t remote_port)
      : t_(t),
        stream_(MakeStream(std::move(socket), tls)),
        address_(std::move(address)),
        port_(remote_port) {}

  ~Session() override { t_->SessionClosed(this, address_); }

  void Start() {
    if constexpr (kTls) {
      Arm(t_->limits().header_timeout_ms);
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = Self()](beast::error_code ec) {
                                self->Disarm();
                                if (ec) return self->Close();
                                self->WaitForRequest();
                              });
    } else {
      WaitForRequest();
    }
  }

  void CloseIfIdle() override {
    if (state_ == State::kIdle || state_ == State::kHeader || state_ == State::kBody) Close();
  }
  void ForceClose() override { Close(); }

 private:
  static constexpr bool kTls = !std::is_same_v<Stream, tcp::socket>;
  enum class State { kIdle, kHeader, kBody, kHandling, kWriting, kClosing, kClosed };

  static Stream MakeStream(tcp::socket&& socket, asio::ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      (void)tls;
      return Stream(std::move(socket));
    }
  }

  std::shared_ptr<Session> Self() { return std::static_pointer_cast<Session>(shared_from_this()); }
  tcp::socket& Tcp() { return beast::get_lowest_layer(stream_); }

  // Deadlines: one timer per session. When it fires, the pending operation is cancelled and
  // `timed_out_` tells its handler why (so that it can still answer 408: a cancelled read leaves
  // the socket open). Each Arm/Disarm starts a new generation, so a stale expiry does nothing.
  void Arm(int64_t ms) {
    timed_out_ = false;
    const uint64_t generation = ++timer_generation_;
    timer_.expires_after(milliseconds(ms));
    timer_.async_wait([self = Self(), generation](beast::error_code ec) {
      if (ec || generation != self->timer_generation_ || self->state_ == State::kClosed) return;
      self->timed_out_ = true;
      beast::error_code ignored;
      self->Tcp().cancel(ignored);
    });
  }
  void Disarm() {
    ++timer_generation_;
    timer_.cancel();
  }

  // --- reading a request ---

  void WaitForRequest() {
    state_ = State::kIdle;
    if (t_->stopping()) return Close();
    SkipEmptyLines();
    if (buffer_.size() > 0) return ReadHeader();  // pipelined: the next request is here already
    buffer_.shrink_to_fit();                      // an idle connection holds no buffer
    Arm(t_->limits().idle_timeout_ms);
    stream_.async_read_some(
        buffer_.prepare(kFirstReadBytes),
        [self = Self()](beast::error_code ec, size_t n) { self->OnFirstBytes(ec, n); });
  }

  void OnFirstBytes(beast::error_code ec, size_t n) {
    Disarm();
    if (ec) {
      if (timed_out_) t_->counters().idle_timeouts.fetch_add(1);
      return Close();
    }
    buffer_.commit(n);
    SkipEmptyLines();
    if (buffer_.size() == 0) return WaitForRequest();  // only empty lines so far
    ReadHeader();
  }

  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before a request line (some
  // clients send a CRLF after a POST body). At most kMaxEmptyLineBytes per request, so that
  // empty lines cannot keep a connection alive forever.
  void SkipEmptyLines() {
    const auto* p = static_cast<const char*>(buffer_.data().data());
    size_t n = 0;
    while (n < buffer_.size() && skipped_empty_ + n < kMaxEmptyLineBytes &&
           (p[n] == '\r' || p[n] == '\n')) {
      ++n;
    }
    buffer_.consume(n);
    skipped_empty_ += n;
  }

  void ReadHeader() {
    state_ = State::kHeader;
    parser_.emplace();
    parser_->header_limit(t_->limits().max_header_bytes);
    // No body limit while the header is read: a Content-Length over it is refused below with
    // the whole header at hand (for the error, the audit, the access log).
    parser_->body_limit(std::numeric_limits<uint64_t>::max());
    Arm(t_->limits().header_timeout_ms);
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    Disarm();
    if (ec && timed_out_) {
      t_->counters().header_timeouts.fetch_add(1);
      return Refuse(408, "the request header did not arrive within " +
                             std::to_string(t_->limits().header_timeout_ms) + " ms");
    }
    if (ec) return RefuseParseError(ec);
    auto& req = parser_->get();
    if (std::string problem = FramingProblem(req); !problem.empty()) {
      t_->counters().bad_requests.fetch_add(1);
      return Refuse(400, "malformed HTTP request: " + problem);
    }
    if (req.version() != 10 && req.version() != 11) {
      t_->counters().bad_requests.fetch_add(1);
      return Refuse(400, "malformed HTTP request: only HTTP/1.0 and HTTP/1.1 are served");
    }
    if (auto len = parser_->content_length();
        len && *len > static_cast<uint64_t>(t_->limits().max_body_bytes)) {
      t_->counters().too_large.fetch_add(1);
      return Refuse(413, "");
    }
    if (parser_->is_done()) return Dispatch();
    parser_->body_limit(static_cast<uint64_t>(t_->limits().max_body_bytes));  // chunked bodies
    state_ = State::kBody;
    body_start_ = Clock::now();
    const auto expect = req[http::field::expect];
    if (req.version() == 11 &&
        ToLowerAscii(std::string_view(expect.data(), expect.size())) == "100-continue") {
      static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      Arm(t_->limits().write_timeout_ms);
      asio::async_write(stream_, asio::buffer(kContinue),
                        [self = Self()](beast::error_code ec, size_t) {
                          self->Disarm();
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    Arm(t_->limits().body_read_timeout_ms);
    http::async_read_some(stream_, buffer_, *parser_,
                          [self = Self()](beast::error_code ec, size_t) { self->OnBody(ec); });
  }

  void OnBody(beast::error_code ec) {
    Disarm();
    const TransportLimits& l = t_->limits();
    if (ec && timed_out_) {
      t_->counters().body_timeouts.fetch_add(1);
      return Refuse(408, "no part of the request body arrived for " +
                             std::to_string(l.body_read_timeout_ms) + " ms");
    }
    if (ec) return RefuseParseError(ec);
    if (parser_->is_done()) return Dispatch();
    const auto elapsed_ms =
        std::chrono::duration_cast<milliseconds>(Clock::now() - body_start_).count();
    if (elapsed_ms > l.body_grace_ms) {
      const double rate = static_cast<double>(parser_->get().body().size()) * 1000.0 /
                          static_cast<double>(elapsed_ms);
      if (rate < static_cast<double>(l.body_min_bytes_per_second)) {
        t_->counters().body_timeouts.fetch_add(1);
        return Refuse(408, "the request body arrives slower than " +
                               std::to_string(l.body_min_bytes_per_second) + " bytes/s");
      }
    }
    ReadBody();
  }

  void RefuseParseError(const beast::error_code& ec) {
    if (ec == http::error::end_of_stream || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted ||
        ec == asio::ssl::error::stream_truncated) {
      return Close();  // the client went away
    }
    const bool start_line_parsed = parser_ && !parser_->get().target().empty();
    const auto [status, message] = ParseErrorStatus(ec, start_line_parsed);
    (status == 413 ? t_->counters().too_large : t_->counters().bad_requests).fetch_add(1);
    Refuse(status, message);
  }

  // --- answering ---

  // Builds the request the handler sees. False (and a refusal sent) if it cannot be built.
  bool BuildRequest(httplib::Request* out) {
    auto& req = parser_->get();
    FillHeaders(req, out);
    out->remote_addr = address_;
    out->remote_port = port_;
    if (!FillTarget(std::string_view(req.target().data(), req.target().size()), out)) {
      t_->counters().bad_requests.fetch_add(1);
      Refuse(400, "malformed HTTP request: the target is not a path");
      return false;
    }
    out->body = std::move(req.body());
    return true;
  }

  // On a worker: a multipart body is parsed here rather than on the event loop (it may be tens
  // of MiB), then the handler runs; a malformed one is answered 400 without the handler.
  static void Serve(HttpTransport::Impl* t, httplib::Request& request,
                    httplib::Response& response) {
    const std::string type = request.get_header_value("Content-Type");
    if (IsMultipartFormData(type)) {
      auto parts = ParseMultipartFormData(type, request.body);
      if (!parts.ok()) {
        t->counters().bad_requests.fetch_add(1);
        response.status = 400;
        t->Render(request, response, parts.status().message());
        return;
      }
      request.files = std::move(parts).value();
    }
    t->handler()(request, response);
  }

  void Dispatch() {
    auto request = std::make_shared<httplib::Request>();
    if (!BuildRequest(request.get())) return;
    keep_alive_ = parser_->get().keep_alive();
    head_ = parser_->get().method() == http::verb::head;
    version_ = parser_->get().version();
    parser_.reset();
    skipped_empty_ = 0;
    ++served_;
    state_ = State::kHandling;
    Disarm();  // the handler's time is not the client's fault
    asio::post(t_->pool(), [self = Self(), request]() mutable {
      auto response = std::make_shared<httplib::Response>();
      try {
        Serve(self->t_, *request, *response);
      } catch (...) {
        response->status = 500;
        response->body = R"({"error":{"code":"internal","message":"internal error"}})";
      }
      auto* t = self->t_;
      asio::post(t->io(), [self = std::move(self), response]() mutable {
        self->Write(*response, /*close=*/false);
      });
    });
  }

  // A refusal decided here: render, send with Connection: close, linger, close.
  void Refuse(int status, const std::string& reason) {
    httplib::Request req;
    req.remote_addr = address_;
    req.remote_port = port_;
    if (parser_ && !parser_->get().target().empty()) {  // the request line arrived
      auto& h = parser_->get();
      FillHeaders(h, &req);
      if (!FillTarget(std::string_view(h.target().data(), h.target().size()), &req)) {
        req.path = "";
      }
      head_ = h.method() == http::verb::head;
    }
    httplib::Response res;
    res.status = status;
    t_->Render(req, res, reason);
    version_ = 11;
    Write(res, /*close=*/true);
  }

  void Write(httplib::Response& res, bool close) {
    if (state_ == State::kClosed) return;
    if (close || t_->stopping() || served_ >= t_->limits().max_requests_per_connection) {
      keep_alive_ = false;
    }
    closing_after_write_ = close;
    state_ = State::kWriting;
    response_.emplace();
    auto& r = *response_;
    r.version(version_);
    r.result(static_cast<unsigned>(res.status));
    for (const auto& [name, value] : res.headers) {
      const std::string lower = ToLowerAscii(name);
      if (lower == "content-length" || lower == "connection") continue;  // ours to set
      r.insert(name, value);
    }
    r.keep_alive(keep_alive_);
    const bool no_body = res.status == 204 || res.status == 304 || res.status < 200;
    if (no_body) {
      r.body().clear();
    } else if (head_) {
      r.set(http::field::content_length, std::to_string(res.body.size()));
    } else {
      r.body() = std::move(res.body);
      r.prepare_payload();
    }
    // The deadline grows with the response (at the body's minimum rate): a large document
    // downloaded over a slow link is not cut off, a client that stops reading is.
    Arm(t_->limits().write_timeout_ms +
        static_cast<int64_t>(r.body().size()) * 1000 /
            std::max<int64_t>(1, t_->limits().body_min_bytes_per_second));
    http::async_write(stream_, r,
                      [self = Self()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    Disarm();
    response_.reset();
    if (ec) return Close();
    if (closing_after_write_) return Linger();
    if (!keep_alive_) return Shutdown();
    WaitForRequest();
  }

  // After a refusal the client may still be sending (a body we will not read): stop sending,
  // drain for a moment so that it sees our response rather than a reset, then close.
  void Linger() {
    // TLS: end with close_notify (a TLS client takes a bare TCP close after a response as a
    // truncation attack and reports an error); the shutdown waits for the client's reply.
    if constexpr (kTls) return Shutdown();
    state_ = State::kClosing;
    beast::error_code ignored;
    Tcp().shutdown(tcp::socket::shutdown_send, ignored);
    linger_deadline_ = Clock::now() + milliseconds(kLingerMs);
    Drain();
  }

  void Drain() {
    if (Clock::now() >= linger_deadline_ || lingered_ > kLingerMaxBytes) return Close();
    Arm(std::max<int64_t>(
        1, std::chrono::duration_cast<milliseconds>(linger_deadline_ - Clock::now()).count()));
    drain_.resize(16 * 1024);
    Tcp().async_read_some(asio::buffer(drain_), [self = Self()](beast::error_code ec, size_t n) {
      if (ec) return self->Close();
      self->lingered_ += n;
      self->Drain();
    });
  }

  void Shutdown() {
    state_ = State::kClosing;
    if constexpr (kTls) {
      Arm(kLingerMs);
      stream_.async_shutdown([self = Self()](beast::error_code) { self->Close(); });
    } else {
      beast::error_code ignored;
      Tcp().shutdown(tcp::socket::shutdown_send, ignored);
      Close();
    }
  }

  void Close() {
    if (state_ == State::kClosed) return;
    state_ = State::kClosed;
    beast::error_code ignored;
    Disarm();
    Tcp().shutdown(tcp::socket::shutdown_both, ignored);
    Tcp().close(ignored);
  }

  HttpTransport::Impl* t_;
  Stream stream_;
  std::string address_;
  uint16_t port_;
  asio::steady_timer timer_{Tcp().get_executor()};
  uint64_t timer_generation_ = 0;
  bool timed_out_ = false;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  State state_ = State::kIdle;
  Clock::time_point body_start_;
  Clock::time_point linger_deadline_;
  std::string drain_;
  size_t lingered_ = 0;
  size_t skipped_empty_ = 0;
  int64_t served_ = 0;
  unsigned version_ = 11;
  bool keep_alive_ = true;
  bool head_ = false;
  bool closing_after_write_ = false;
};

}  // namespace

// --- Impl ------------------------------------------------------------------------------------

Status HttpTransport::Impl::Bind(const std::string& host, int port) {
  beast::error_code ec;
  const std::string where = host + ":" + std::to_string(port);
  auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
  if (ec)
    return Status::IOError("cannot bind " + where + ": not an IP address (" + ec.message() + ")");
  tcp::endpoint endpoint(address, static_cast<uint16_t>(port));
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status::IOError("cannot bind " + where + " (" + ec.message() +
                           "; address in use or not available)");
  }
  port_ = acceptor_.local_endpoint().port();
  return Status::OK();
}

void HttpTransport::Impl::Run() {
  Accept();
  loop_ = std::thread([this] {
    while (true) {
      try {
        io_.run();
        break;
      } catch (const std::exception& e) {
        LogError("http event loop exception", nlohmann::json{{"error", e.what()}}.dump());
      }
    }
  });
}

void HttpTransport::Impl::Accept() {
  acceptor_.async_accept(
      [this](beast::error_code ec, tcp::socket s) { OnAccept(ec, std::move(s)); });
}

bool HttpTransport::Impl::Admit(const std::string& address, bool* total_cap) {
  MutexLock lock(mu_);
  // counters_.open_connections is the count of open sessions: changed only under mu_, so that
  // the check and the increment are one step.
  *total_cap = counters_.open_connections.load() >= limits_.max_connections;
  if (*total_cap) return false;
  int64_t& n = per_address_[address];
  if (limits_.max_connections_per_address > 0 && n >= limits_.max_connections_per_address) {
    if (n == 0) per_address_.erase(address);
    return false;
  }
  ++n;
  counters_.open_connections.fetch_add(1);
  return true;
}

void HttpTransport::Impl::OnAccept(beast::error_code ec, tcp::socket socket) {
  if (stopping_) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    // Out of file descriptors and the like: back off instead of spinning.
    LogWarn("accept failed", nlohmann::json{{"error", ec.message()}}.dump());
    accept_retry_.expires_after(milliseconds(100));
    accept_retry_.async_wait([this](beast::error_code e) {
      if (!e && !stopping_) Accept();
    });
    return;
  }
  beast::error_code e;
  const auto remote = socket.remote_endpoint(e);
  if (e) {
    Accept();
    return;
  }
  const std::string address = remote.address().to_string();
  bool total_cap = false;
  if (!Admit(address, &total_cap)) {
    (total_cap ? counters_.rejected_total_cap : counters_.rejected_address_cap).fetch_add(1);
    Reject(std::move(socket));
    Accept();
    return;
  }
  counters_.accepted.fetch_add(1);
  socket.set_option(tcp::no_delay(true), e);
  std::shared_ptr<SessionBase> session;
  if (tls_ != nullptr) {
    session = std::make_shared<Session<beast::ssl_stream<tcp::socket>>>(
        this, std::move(socket), tls_, address, remote.port());
  } else {
    session = std::make_shared<Session<tcp::socket>>(this, std::move(socket), nullptr, address,
                                                     remote.port());
  }
  {
    MutexLock lock(mu_);
    sessions_[session.get()] = session;
  }
  if (tls_ != nullptr) {
    std::static_pointer_cast<Session<beast::ssl_stream<tcp::socket>>>(session)->Start();
  } else {
    std::static_pointer_cast<Session<tcp::socket>>(session)->Start();
  }
  Accept();
}

// A connection over a cap: one non-blocking write of a fixed 503 (a client that cannot take it at
// once loses it), then, so that the client reads the 503 rather than a reset caused by its
// unread request, a short drain before the close — for at most kMaxLingeringRejects sockets at
// a time (beyond that, closed at once: a flood must not pile up sockets).
void HttpTransport::Impl::Reject(tcp::socket socket) {
  beast::error_code e;
  socket.non_blocking(true, e);
  socket.write_some(asio::buffer(BusyResponse()), e);
  socket.shutdown(tcp::socket::shutdown_send, e);
  if (lingering_rejects_ >= kMaxLingeringRejects) {
    socket.close(e);
    return;
  }
  ++lingering_rejects_;
  auto r = std::make_shared<RejectedConnection>(std::move(socket), io_);
  r->timer.expires_after(milliseconds(kRejectLingerMs));
  r->timer.async_wait([r](beast::error_code ec) {
    beast::error_code ignored;
    if (!ec) r->socket.close(ignored);  // ends the drain below
  });
  DrainRejected(std::move(r));
}

void HttpTransport::Impl::DrainRejected(std::shared_ptr<RejectedConnection> r) {
  auto* raw = r.get();
  raw->socket.async_read_some(asio::buffer(raw->buffer),
                              [this, r = std::move(r)](beast::error_code ec, size_t n) mutable {
                                r->drained += n;
                                if (!ec && r->drained < kLingerMaxBytes) {
                                  DrainRejected(std::move(r));
                                  return;
                                }
                                beast::error_code ignored;
                                r->timer.cancel();
                                r->socket.close(ignored);
                                --lingering_rejects_;
                              });
}

void HttpTransport::Impl::SessionClosed(SessionBase* s, const std::string& address) {
  MutexLock lock(mu_);
  sessions_.erase(s);
  counters_.open_connections.fetch_sub(1);
  auto it = per_address_.find(address);
  if (it != per_address_.end() && --it->second <= 0) per_address_.erase(it);
}

void HttpTransport::Impl::Stop() {
  if (stopping_.exchange(true)) {  // another thread is stopping: wait for it
    Wait();
    return;
  }
  // Stop accepting and close every connection that is not handling or writing a request.
  auto close_idle = [this](bool force) {
    std::vector<std::shared_ptr<SessionBase>> live;
    {
      MutexLock lock(mu_);
      for (auto& [ptr, weak] : sessions_) {
        if (auto s = weak.lock()) live.push_back(std::move(s));
      }
    }
    for (auto& s : live) force ? s->ForceClose() : s->CloseIfIdle();
  };
  asio::post(io_, [this, close_idle] {
    beast::error_code ignored;
    acceptor_.close(ignored);
    accept_retry_.cancel();
    close_idle(false);
  });
  // In-flight requests finish and are answered (with Connection: close); their sessions are
  // open until then, so no open session means nothing in flight.
  const auto deadline = Clock::now() + milliseconds(limits_.drain_timeout_ms);
  while (Clock::now() < deadline && counters_.open_connections.load() > 0) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  // Whatever is left is cut; then the loop ends. Handlers still running on workers may post
  // their responses to the stopped loop: those are dropped with it.
  asio::post(io_, [this, close_idle] {
    close_idle(true);
    io_.stop();
  });
  if (loop_.joinable()) loop_.join();
  pool_.join();
  {
    MutexLock lock(stop_mu_);
    stopped_ = true;
  }
  stopped_cv_.SignalAll();
}

void HttpTransport::Impl::Wait() {
  MutexLock lock(stop_mu_);
  while (!stopped_) stopped_cv_.Wait(stop_mu_);
}

// --- HttpTransport ----------------------------------------------------------------------------

HttpTransport::HttpTransport(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpTransport::~HttpTransport() { Stop(); }

Result<std::unique_ptr<HttpTransport>> HttpTransport::Start(
    const std::string& host, int port, int workers, const TransportLimits& limits,
    asio::ssl::context* tls, Handler handler, ErrorRenderer renderer) {
  if (workers < 1) return Status::InvalidArgument("the HTTP worker pool needs a thread");
  if (limits.max_connections < 1) return Status::InvalidArgument("max_connections must be > 0");
  if (limits.max_connections_per_address < 0) {
    return Status::InvalidArgument("max_connections_per_address must be >= 0");
  }
  for (auto [name, ms] : {std::pair<const char*, int64_t>{"idle timeout", limits.idle_timeout_ms},
                          {"header timeout", limits.header_timeout_ms},
                          {"body timeout", limits.body_read_timeout_ms},
                          {"write timeout", limits.write_timeout_ms}}) {
    if (ms < 1) return Status::InvalidArgument(std::string("the HTTP ") + name + " must be > 0");
  }
  auto impl = std::make_unique<Impl>(workers, limits, tls, std::move(handler), std::move(renderer));
  KB_RETURN_IF_ERROR(impl->Bind(host, port));
  impl->Run();
  return std::unique_ptr<HttpTransport>(new HttpTransport(std::move(impl)));
}

int HttpTransport::port() const { return impl_->port(); }
void HttpTransport::Stop() { impl_->Stop(); }
void HttpTransport::Wait() { impl_->Wait(); }
const TransportCounters& HttpTransport::counters() const { return impl_->counters(); }

int64_t RaiseOpenFileLimit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return -1;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(lim.rlim_cur);
}

}  // namespace kb::api
