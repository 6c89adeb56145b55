// ApiServer: the HTTP front of a KnowledgeBase, serving the v1 REST API, the
// Python-compatible v2 API, /health, /ready and /metrics. Routes: docs/API.md.
//
// Every request passes one middleware (server.cc, Dispatch): request id (X-Request-ID echoed if
// sane, else generated), the address rules (403), route lookup (404/405), CORS, authentication
// and scope/project checks, rate limit (429) and service mode (503) (api/access_control.h),
// the handler, Status -> HTTP mapping (http_status.cc), security headers, metrics and one JSON
// access-log line. No exception leaves a handler: escaped ones become 500 with a request id.
//
// Connections, framing, deadlines and connection caps are the transport's
// (api/http_transport.h: an event loop, so idle and slow clients never hold a worker); a request
// that has fully arrived is dispatched on a pool of ServerOptions::threads workers. Requests are
// represented as httplib::Request/Response, the shape the routes were written against.
//
// Lifecycle: Start() binds (IOError if the address is taken) and serves in the background;
// Stop() stops accepting, finishes in-flight requests and joins; Wait() blocks until the server
// has stopped (e.g. after Stop() from a signal-handling thread). The KnowledgeBase must outlive
// the server.
//
// Thread-safety: Start/Stop/Wait/port may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "api/access_control.h"
#include "api/http_transport.h"
#include "common/status.h"
#include "notify/notifier.h"
#include "service/knowledge_base.h"

// httplib::Request/Response and boost::asio::ssl::context are declared by api/http_transport.h.

namespace kb::backup {
class BackupService;
class JournalShipper;
}  // namespace kb::backup

namespace kb::audit {
class AuditLog;
}  // namespace kb::audit

namespace kb::api {
class McpServer;
class MetricsRegistry;
class Router;
struct ApiContext;
}  // namespace kb::api

namespace kb {

inline constexpr int64_t kDefaultMaxBodyBytes = 64LL * 1024 * 1024;
inline constexpr int kDefaultServerThreads = 8;

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = an ephemeral port; see ApiServer::port()
  int64_t max_body_bytes = kDefaultMaxBodyBytes;
  std::vector<std::string> cors_origins;  // exact origins, or "*"
  bool metrics_require_auth = false;
  int threads = kDefaultServerThreads;  // workers that run handlers
  // Connection caps and deadlines (api/http_transport.h); its max_body_bytes is ignored in favour
  // of the field above.
  api::TransportLimits transport;
  // Backups (routes under /api/v1/admin/backups, kb_backup_* metrics); must outlive the server.
  backup::BackupService* backups = nullptr;
  // Journal shipping (kb_ship_* metrics); null when off. Must outlive the server.
  backup::JournalShipper* shipper = nullptr;
  // Containment (api/access_control.h). The service mode and address rules are not options:
  // they live in the catalog, change at run time and survive restarts.
  double rate_limit_per_second = api::kDefaultRatePerSecond;  // 0 = no rate limit
  double rate_limit_burst = api::kDefaultRateBurst;
  int64_t containment_poll_ms = api::kContainmentPollIntervalMs;
  // HTTPS when both are set: PEM certificate (chain) and private key; TLS 1.2 or newer only.
  std::string tls_cert_file;
  std::string tls_key_file;
  // The audit log (api/audit_hook.h: which requests are recorded; GET /api/v1/admin/audit;
  // kb_audit_* metrics); null = none. Must outlive the server.
  audit::AuditLog* audit = nullptr;
  // Where requests are recorded when not `audit` itself (the notifier's NotifyingSink, which
  // records to `audit`); must outlive the server.
  AuditSink* audit_sink = nullptr;
  // Notification figures for /metrics (kb_notify_*); null = notifications are off.
  const notify::NotifierCounters* notify = nullptr;
  bool audit_reads = false;  // also record successful reads
  // MCP at POST /mcp (api/mcp.h): the directories its ingest_file tool may read below; empty =
  // ingest_file refuses every path.
  std::vector<std::string> mcp_import_roots;
};

class ApiServer {
 public:
  // Binds host:port and starts serving in the background. IOError naming the address if it
  // cannot bind (in use, bad host); InvalidArgument for nonsensical options and for a TLS
  // certificate or key that cannot be loaded or do not match (naming the file and why).
  static Result<std::unique_ptr<ApiServer>> Start(KnowledgeBase* kb, const ServerOptions& options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  // The bound port (the real one when options.port was 0).
  int port() const { return port_; }
  // Stops accepting connections and joins the serving thread. Idempotent.
  void Stop();
  // Blocks until the server stops.
  void Wait();

  api::MetricsRegistry& metrics() { return *metrics_; }

 private:
  ApiServer(KnowledgeBase* kb, const ServerOptions& options);
  void RegisterMetrics();
  void RefreshMetrics();
  // The middleware every request passes (see the file comment).
  void Dispatch(const httplib::Request& req, httplib::Response& res);
  // Renders a refusal the transport decided before routing (400, 408, 413, 414, 431) as JSON,
  // with the metrics, access log and audit every request gets.
  void RenderTransportError(const httplib::Request& req, httplib::Response& res,
                            const std::string& reason);

  KnowledgeBase* kb_;
  ServerOptions options_;
  int port_ = 0;
  std::unique_ptr<api::MetricsRegistry> metrics_;
  std::unique_ptr<Catalog> containment_catalog_;  // own connection for the containment settings
  std::unique_ptr<api::AccessControl> access_;
  std::unique_ptr<api::ApiContext> ctx_;
  const notify::NotifierCounters* notify_ = nullptr;  // kb_notify_* (null: notifications off)
  std::unique_ptr<api::McpServer> mcp_;
  std::unique_ptr<api::Router> router_;
  std::unique_ptr<boost::asio::ssl::context> tls_;  // null: plain HTTP
  std::unique_ptr<api::HttpTransport> transport_;
};

}  // namespace kb
