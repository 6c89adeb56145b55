// ApiServer: binding, lifecycle and the per-request middleware (see server.h).
#include "api/server.h"

#include <httplib.h>

#include <boost/asio/ssl/context.hpp>

#include "api/audit_hook.h"
#include "api/auth.h"
#include "api/http_status.h"
#include "api/http_transport.h"
#include "api/json_encoding.h"
#include "api/mcp.h"
#include "api/metrics.h"
#include "api/router.h"
#include "api/tls.h"
#include "audit/audit_log.h"
#include "backup/service.h"
#include "backup/shipper.h"
#include "common/clock.h"
#include "common/crypto_util.h"
#include "common/data_layout.h"
#include "common/logging.h"
#include "common/memory_usage.h"

#ifndef KB_VERSION
#define KB_VERSION "dev"
#endif

namespace kb {

using nlohmann::json;

namespace {

constexpr size_t kMaxRequestIdLength = 128;
constexpr const char* kUnmatchedRoute = "(unmatched)";

// A client's X-Request-ID is echoed only if it is short printable ASCII, so that it can never
// inject into headers or logs.
bool SaneRequestId(const std::string& id) {
  if (id.empty() || id.size() > kMaxRequestIdLength) return false;
  for (unsigned char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

void SetCommonHeaders(httplib::Response& res, const std::string& request_id) {
  res.set_header("X-Request-ID", request_id);
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("X-Frame-Options", "DENY");
  res.set_header("Referrer-Policy", "no-referrer");
  res.set_header("Cache-Control", "no-store");
  res.set_header("Content-Security-Policy", "default-src 'none'");
}

bool OriginAllowed(const std::vector<std::string>& allowed, const std::string& origin) {
  if (origin.empty()) return false;
  for (const std::string& a : allowed) {
    if (a == "*" || a == origin) return true;
  }
  return false;
}

std::string JoinMethods(std::vector<std::string> methods) {
  std::string out;
  bool has_get = false;
  for (const auto& m : methods) has_get |= m == "GET";
  if (has_get) methods.push_back("HEAD");
  methods.push_back("OPTIONS");
  for (size_t i = 0; i < methods.size(); ++i) {
    if (i) out += ", ";
    out += methods[i];
  }
  return out;
}

json RawError(const std::string& code, const std::string& message, const std::string& request_id) {
  return {{"error", {{"code", code}, {"message", message}, {"request_id", request_id}}}};
}

}  // namespace

ApiServer::ApiServer(KnowledgeBase* kb, const ServerOptions& options)
    : kb_(kb), options_(options), metrics_(std::make_unique<api::MetricsRegistry>()) {}

ApiServer::~ApiServer() { Stop(); }

Result<std::unique_ptr<ApiServer>> ApiServer::Start(KnowledgeBase* kb,
                                                    const ServerOptions& options) {
  if (kb == nullptr) return Status::InvalidArgument("no knowledge base");
  if (options.port < 0 || options.port > 65535) {
    return Status::InvalidArgument("port must be between 0 and 65535");
  }
  if (options.threads < 1 || options.threads > 1024) {
    return Status::InvalidArgument("threads must be between 1 and 1024");
  }
  if (options.max_body_bytes < 1) return Status::InvalidArgument("max_body_bytes must be > 0");

  std::unique_ptr<ApiServer> server(new ApiServer(kb, options));
  ApiServer* self = server.get();
  self->RegisterMetrics();

  // The containment settings are read through a connection of our own: they belong to the HTTP
  // layer, and the catalog is SQLite in WAL mode, so two connections are as good as one.
  KB_ASSIGN_OR_RETURN(self->containment_catalog_,
                      Catalog::Open(layout::CatalogDb(kb->options().data_dir), kb->clock()));
  api::AccessControlOptions access;
  access.rate.per_second = options.rate_limit_per_second;
  access.rate.burst = options.rate_limit_burst;
  access.poll_interval_ms = options.containment_poll_ms;
  access.clock = kb->clock();
  KB_ASSIGN_OR_RETURN(self->access_,
                      api::AccessControl::Open(self->containment_catalog_.get(), access));

  self->ctx_ = std::make_unique<api::ApiContext>();
  self->ctx_->kb = kb;
  self->ctx_->backups = options.backups;
  self->ctx_->shipper = options.shipper;
  self->ctx_->access = self->access_.get();
  self->ctx_->audit = options.audit;
  self->ctx_->audit_sink = options.audit_sink;
  self->notify_ = options.notify;
  self->ctx_->audit_reads = options.audit_reads;
  self->ctx_->metrics = self->metrics_.get();
  self->ctx_->started_mono_us = MonotonicMicros();
  self->ctx_->metrics_require_auth = options.metrics_require_auth;
  self->ctx_->max_body_bytes = options.max_body_bytes;
  self->ctx_->host = options.host;
  self->ctx_->tls = !options.tls_cert_file.empty() && !options.tls_key_file.empty();
  self->ctx_->refresh_metrics = [self] { self->RefreshMetrics(); };
  self->ctx_->cors_origins = options.cors_origins;
  api::McpOptions mcp;
  mcp.import_roots = options.mcp_import_roots;
  mcp.backups = options.backups;
  mcp.audit = options.audit_sink ? options.audit_sink : options.audit;
  mcp.max_document_bytes = kb->options().max_document_bytes;
  self->mcp_ = std::make_unique<api::McpServer>(kb, std::move(mcp));
  self->ctx_->mcp = self->mcp_.get();
  self->router_ = std::make_unique<api::Router>();
  for (auto& r : api::MakeV1Routes(self->ctx_.get())) self->router_->Add(std::move(r));
  for (auto& r : api::MakeV2Routes(self->ctx_.get())) self->router_->Add(std::move(r));
  for (auto& r : api::MakeBackupRoutes(self->ctx_.get())) self->router_->Add(std::move(r));
  for (auto& r : api::MakeContainmentRoutes(self->ctx_.get())) self->router_->Add(std::move(r));
  for (auto& r : api::MakeLifecycleRoutes(self->ctx_.get())) self->router_->Add(std::move(r));
  for (auto& r : api::MakeAuditRoutes(self->ctx_.get())) self->router_->Add(std::move(r));
  for (auto& r : api::MakeMcpRoutes(self->ctx_.get())) self->router_->Add(std::move(r));

  const bool tls = !options.tls_cert_file.empty() || !options.tls_key_file.empty();
  if (tls) {
    if (options.tls_cert_file.empty() || options.tls_key_file.empty()) {
      return Status::InvalidArgument("HTTPS needs both tls_cert_file and tls_key_file");
    }
    KB_ASSIGN_OR_RETURN(self->tls_,
                        api::MakeTlsContext(options.tls_cert_file, options.tls_key_file));
  }
  // Every connection is a file descriptor: a default soft limit of 1024 would cap connections
  // below max_connections.
  const int64_t open_files = api::RaiseOpenFileLimit();
  api::TransportLimits limits = options.transport;
  limits.max_body_bytes = options.max_body_bytes;
  KB_ASSIGN_OR_RETURN(
      self->transport_,
      api::HttpTransport::Start(
          options.host, options.port, options.threads, limits, self->tls_.get(),
          [self](const httplib::Request& req, httplib::Response& res) { self->Dispatch(req, res); },
          [self](const httplib::Request& req, httplib::Response& res, const std::string& reason) {
            self->RenderTransportError(req, res, reason);
          }));
  self->port_ = self->transport_->port();
  LogInfo("listening",
          api::DumpJson({{"host", options.host},
                         {"port", self->port_},
                         {"scheme", tls ? "https" : "http"},
                         {"max_connections", limits.max_connections},
                         {"max_connections_per_address", limits.max_connections_per_address},
                         {"open_file_limit", open_files}}));
  return server;
}

void ApiServer::Stop() {
  // The transport's Stop is idempotent and safe from several threads at once.
  if (transport_) transport_->Stop();
}

void ApiServer::Wait() {
  if (transport_) transport_->Wait();
}

void ApiServer::RegisterMetrics() {
  api::MetricsRegistry& m = *metrics_;
  m.DeclareCounter("kb_http_requests_total", "HTTP requests served, by route pattern.",
                   {"route", "method", "status"});
  m.DeclareHistogram("kb_http_request_duration_seconds", "HTTP request latency by route pattern.",
                     {"route"}, api::kLatencyBuckets);
  m.DeclareGauge("kb_documents", "Live documents per project.", {"project"});
  m.DeclareGauge("kb_chunks", "Live chunks per project.", {"project"});
  m.DeclareGauge("kb_index_vectors", "Vectors in the project's index.", {"project"});
  m.DeclareGauge("kb_index_memory_bytes", "Memory used by the project's vector index.",
                 {"project"});
  m.DeclareGauge("kb_project_degraded",
                 "1 if the project is read-only because its database is damaged, else 0.",
                 {"project"});
  m.DeclareGauge("kb_database_cached_bytes",
                 "Bytes of the project's kb.db in the page cache, each page once.", {"project"});
  m.DeclareCounter("kb_ingest_documents_total", "Documents stored (created or replaced).");
  m.DeclareCounter("kb_ingest_chunks_total", "Chunks stored.");
  m.DeclareCounter("kb_ingest_failures_total", "Ingestions that failed.");
  m.DeclareCounter("kb_queries_total", "Search queries answered.");
  m.DeclareCounter("kb_query_cache_hits_total", "Search queries answered from the cache.");
  m.DeclareCounter("kb_index_rebuilds_total",
                   "Vector indexes rebuilt from their database (damaged, missing or stale).");
  m.DeclareCounter("kb_integrity_checks_total", "Integrity checks of the data directory run.");
  m.DeclareCounter("kb_integrity_check_failures_total",
                   "Integrity checks that found a problem (even one they repaired).");
  m.DeclareGauge("kb_integrity_check_last_success_timestamp_seconds",
                 "Unix time at which the last integrity check that left nothing wrong ended "
                 "(0: none yet).");
  m.DeclareGauge("kb_integrity_check_duration_seconds", "How long the last integrity check took.");
  m.DeclareGauge("kb_backup_last_success_timestamp_seconds",
                 "Unix time at which the newest full snapshot in the backup repository started, "
                 "whoever made it (0: none).");
  m.DeclareGauge("kb_backup_next_scheduled_timestamp_seconds",
                 "Unix time at which the next scheduled backup is due (0: no schedule).");
  m.DeclareGauge("kb_backup_consecutive_failures",
                 "Scheduled backups that failed in a row (0 after a success).");
  m.DeclareGauge("kb_backup_next_verify_timestamp_seconds",
                 "Unix time at which the next scheduled verification is due (0: no schedule).");
  m.DeclareCounter("kb_backup_verify_failures_total",
                   "Scheduled verifications that found a problem or could not run.");
  m.DeclareGauge("kb_backup_duration_seconds", "How long the last successful backup took.");
  m.DeclareGauge("kb_backup_added_bytes",
                 "Bytes the last successful backup added to the repository.");
  m.DeclareCounter("kb_backup_failures_total", "Backups that failed.");
  m.DeclareCounter("kb_backup_source_check_failures_total",
                   "Project states a backup stored although they failed its source check "
                   "(marked in the snapshot; restore --latest-valid passes them by).");
  m.DeclareCounter("kb_backups_total", "Backups that succeeded.");
  m.DeclareGauge("kb_backup_last_verified_timestamp_seconds",
                 "Unix time of the newest successful verification recorded in the backup "
                 "repository (0: never).");
  m.DeclareGauge("kb_backup_copy_lag_seconds",
                 "How far a backup_copy_to repository is behind the primary: start of the "
                 "primary's newest full snapshot minus that of the copy's newest (docs/BACKUP.md).",
                 {"repository"});
  m.DeclareCounter("kb_backup_copy_failures_total",
                   "Rounds of copying into a backup_copy_to repository that failed.",
                   {"repository"});
  m.DeclareCounter("kb_notify_sent_total", "Notifications a webhook accepted (per webhook).");
  m.DeclareCounter("kb_notify_failures_total",
                   "Notifications a webhook did not accept after every retry (logged).");
  m.DeclareCounter("kb_notify_dropped_total",
                   "Notifications dropped because the notification queue was full.");
  m.DeclareGauge("kb_ship_lag_seconds",
                 "Age of the oldest committed journal entry of a project not yet shipped to the "
                 "backup repository (0 when caught up; docs/BACKUP.md).",
                 {"project"});
  m.DeclareGauge("kb_ship_last_success_timestamp_seconds",
                 "Unix time at which the last journal-shipping round without an error ended "
                 "(0: none yet).");
  m.DeclareCounter("kb_ship_segments_total", "Journal segments written to the backup repository.");
  m.DeclareCounter("kb_ship_failures_total",
                   "Journal-shipping rounds that failed (each is retried from the journal).");
  m.DeclareCounter("kb_audit_events_total", "Audit log entries committed.");
  m.DeclareCounter("kb_audit_write_failures_total",
                   "Audit events lost because their batch could not be written (logged).");
  m.DeclareCounter("kb_audit_dropped_total",
                   "Audit events dropped because the audit queue stayed full (logged).");
  m.DeclareGauge("kb_http_connections", "Open HTTP connections.");
  m.DeclareCounter("kb_http_connections_accepted_total", "HTTP connections accepted.");
  m.DeclareCounter("kb_http_connections_rejected_total",
                   "HTTP connections refused with 503 at a connection cap, by cap.", {"cap"});
  m.DeclareCounter("kb_http_transport_refusals_total",
                   "Requests or connections the connection layer ended: deadlines passed "
                   "(idle, header, body), framing refused, body over the limit.",
                   {"reason"});
  m.DeclareGauge("kb_uptime_seconds", "Seconds since the server started.");
  m.DeclareGauge("kb_process_resident_memory_bytes",
                 "VmRSS: counts a database page once per connection that mapped it; see the "
                 "next two.");
  m.DeclareGauge("kb_process_anonymous_memory_bytes",
                 "RssAnon: the process's own memory (heap, vector indexes, caches).");
  m.DeclareGauge("kb_process_file_mapped_memory_bytes",
                 "RssFile: mapped file pages as the page tables count them (a database page "
                 "once per connection that touched it).");
  m.DeclareGauge("kb_build_info", "Build information; the value is always 1.", {"version"});
  m.Set("kb_build_info", {KB_VERSION}, 1);
}

void ApiServer::RefreshMetrics() {
  api::MetricsRegistry& m = *metrics_;
  const KbCounters& c = kb_->counters();
  m.Set("kb_ingest_documents_total", {}, static_cast<double>(c.documents_ingested.load()));
  m.Set("kb_ingest_chunks_total", {}, static_cast<double>(c.chunks_ingested.load()));
  m.Set("kb_ingest_failures_total", {}, static_cast<double>(c.ingest_failures.load()));
  m.Set("kb_queries_total", {}, static_cast<double>(c.queries.load()));
  m.Set("kb_query_cache_hits_total", {}, static_cast<double>(c.query_cache_hits.load()));
  m.Set("kb_index_rebuilds_total", {}, static_cast<double>(c.index_rebuilds.load()));
  m.Set("kb_integrity_checks_total", {}, static_cast<double>(c.integrity_checks.load()));
  m.Set("kb_integrity_check_failures_total", {},
        static_cast<double>(c.integrity_check_failures.load()));
  m.Set("kb_integrity_check_last_success_timestamp_seconds", {},
        static_cast<double>(c.integrity_check_last_success_ms.load()) / 1000.0);
  m.Set("kb_integrity_check_duration_seconds", {},
        static_cast<double>(c.integrity_check_last_duration_ms.load()) / 1000.0);
  const ProcessMemory memory = ReadProcessMemory();
  m.Set("kb_process_resident_memory_bytes", {}, static_cast<double>(memory.resident_bytes));
  m.Set("kb_process_anonymous_memory_bytes", {}, static_cast<double>(memory.anonymous_bytes));
  m.Set("kb_process_file_mapped_memory_bytes", {}, static_cast<double>(memory.file_mapped_bytes));
  m.Set("kb_uptime_seconds", {},
        static_cast<double>(MonotonicMicros() - ctx_->started_mono_us) / 1e6);
  if (transport_) {
    const api::TransportCounters& t = transport_->counters();
    m.Set("kb_http_connections", {}, static_cast<double>(t.open_connections.load()));
    m.Set("kb_http_connections_accepted_total", {}, static_cast<double>(t.accepted.load()));
    const std::pair<const char*, const std::atomic<int64_t>*> rejected[] = {
        {"total", &t.rejected_total_cap}, {"per_address", &t.rejected_address_cap}};
    for (const auto& [cap, n] : rejected) {
      m.Set("kb_http_connections_rejected_total", {cap}, static_cast<double>(n->load()));
    }
    const std::pair<const char*, const std::atomic<int64_t>*> refusals[] = {
        {"idle_timeout", &t.idle_timeouts},
        {"header_timeout", &t.header_timeouts},
        {"body_timeout", &t.body_timeouts},
        {"bad_request", &t.bad_requests},
        {"too_large", &t.too_large}};
    for (const auto& [reason, n] : refusals) {
      m.Set("kb_http_transport_refusals_total", {reason}, static_cast<double>(n->load()));
    }
  }
  if (ctx_->backups) {
    const backup::BackupCounters& b = ctx_->backups->counters();
    m.Set("kb_backup_last_success_timestamp_seconds", {},
          static_cast<double>(b.last_success_ms.load()) / 1000.0);
    m.Set("kb_backup_next_scheduled_timestamp_seconds", {},
          static_cast<double>(b.next_due_ms.load()) / 1000.0);
    m.Set("kb_backup_consecutive_failures", {}, static_cast<double>(b.consecutive_failures.load()));
    m.Set("kb_backup_next_verify_timestamp_seconds", {},
          static_cast<double>(b.next_verify_ms.load()) / 1000.0);
    m.Set("kb_backup_verify_failures_total", {}, static_cast<double>(b.verify_failures.load()));
    m.Set("kb_backup_duration_seconds", {}, static_cast<double>(b.last_duration_us.load()) / 1e6);
    m.Set("kb_backup_added_bytes", {}, static_cast<double>(b.last_added_bytes.load()));
    m.Set("kb_backup_failures_total", {}, static_cast<double>(b.failures.load()));
    m.Set("kb_backup_source_check_failures_total", {},
          static_cast<double>(b.source_check_failures.load()));
    m.Set("kb_backups_total", {}, static_cast<double>(b.successes.load()));
    m.Set("kb_backup_last_verified_timestamp_seconds", {},
          static_cast<double>(b.last_verified_ms.load()) / 1000.0);
    for (const backup::CopyTargetStatus& c : ctx_->backups->CopyFigures()) {
      if (c.lag_known) m.Set("kb_backup_copy_lag_seconds", {c.url}, c.lag_seconds);
      m.Set("kb_backup_copy_failures_total", {c.url}, static_cast<double>(c.failures));
    }
  }
  if (notify_) {
    m.Set("kb_notify_sent_total", {}, static_cast<double>(notify_->sent.load()));
    m.Set("kb_notify_failures_total", {}, static_cast<double>(notify_->failures.load()));
    m.Set("kb_notify_dropped_total", {}, static_cast<double>(notify_->dropped.load()));
  }
  if (options_.shipper) {
    const backup::ShipCounters& c = options_.shipper->counters();
    m.Set("kb_ship_last_success_timestamp_seconds", {},
          static_cast<double>(c.last_success_ms.load()) / 1000.0);
    m.Set("kb_ship_segments_total", {}, static_cast<double>(c.segments.load()));
    m.Set("kb_ship_failures_total", {}, static_cast<double>(c.failures.load()));
    m.Clear("kb_ship_lag_seconds");
    for (const backup::ProjectShipState& p : options_.shipper->Projects()) {
      m.Set("kb_ship_lag_seconds", {p.name}, p.lag_seconds);
    }
  }
  if (ctx_->audit) {
    const audit::AuditCounters& a = ctx_->audit->counters();
    m.Set("kb_audit_events_total", {}, static_cast<double>(a.events.load()));
    m.Set("kb_audit_write_failures_total", {}, static_cast<double>(a.write_failures.load()));
    m.Set("kb_audit_dropped_total", {}, static_cast<double>(a.dropped.load()));
  }
  auto stats = kb_->Stats();
  if (!stats.ok()) return;
  for (const char* name : {"kb_documents", "kb_chunks", "kb_index_vectors", "kb_index_memory_bytes",
                           "kb_project_degraded", "kb_database_cached_bytes"}) {
    m.Clear(name);
  }
  for (const ProjectStats& p : stats->per_project) {
    // Project names are bounded (1-100 chars) and few; ids would be unreadable on dashboards.
    const std::vector<std::string> label = {p.project.name};
    m.Set("kb_documents", label, static_cast<double>(p.counts.documents));
    m.Set("kb_chunks", label, static_cast<double>(p.counts.chunks));
    m.Set("kb_index_vectors", label, static_cast<double>(p.index_vectors));
    m.Set("kb_index_memory_bytes", label, static_cast<double>(p.index_memory_bytes));
    m.Set("kb_project_degraded", label, p.damage ? 1.0 : 0.0);
    // The database's pages in the page cache, each once (not once per connection as RSS has it).
    auto cached = ResidentFileBytes(layout::ProjectDb(kb_->options().data_dir, p.project.id));
    if (cached.ok()) m.Set("kb_database_cached_bytes", label, static_cast<double>(*cached));
  }
}

void ApiServer::RenderTransportError(const httplib::Request& req, httplib::Response& res,
                                     const std::string& reason) {
  const std::string header_id = req.get_header_value("X-Request-ID");
  const std::string request_id = SaneRequestId(header_id) ? header_id : NewUuid();
  json body;
  if (res.status == 413) {
    body = api::ToHttpError(
               Status::PayloadTooLarge("request body larger than " +
                                       std::to_string(options_.max_body_bytes) + " bytes"),
               request_id)
               .body;
  } else if (res.status == 414) {
    body = RawError("uri_too_long", "request URI too long", request_id);
  } else if (res.status == 408) {
    body = RawError("request_timeout", reason, request_id);
  } else if (res.status == 431) {
    body = RawError("headers_too_large", "request header fields too large", request_id);
  } else {
    body = RawError("bad_request", reason.empty() ? "malformed HTTP request" : reason, request_id);
  }
  SetCommonHeaders(res, request_id);
  res.set_content(api::DumpJson(body), "application/json");
  // An unparsed request has no method: label it so rather than with an empty string.
  const std::string method = req.method.empty() ? "(none)" : req.method;
  metrics_->Add("kb_http_requests_total", {kUnmatchedRoute, method, std::to_string(res.status)});
  LogInfo("request", api::DumpJson({{"request_id", request_id},
                                    {"method", method},
                                    {"route", kUnmatchedRoute},
                                    {"status", res.status},
                                    {"remote", req.remote_addr},
                                    {"reason", reason}}));
  api::Router::Match match;  // the route the refused request was for, if any
  router_->Find(req.method, req.path, &match);
  api::RequestContext audit_ctx{req, request_id, std::move(match.params), {}, {}};
  api::AuditRequest(ctx_.get(), {req, res, request_id, match.route, &audit_ctx});
}

namespace {

// --- the steps of ApiServer::Dispatch, in the order a request meets them ---

// Renders a Status failure through the one mapping in http_status.cc.
void RenderFailure(const Status& s, const std::string& request_id, bool v2,
                   httplib::Response& res) {
  api::HttpError e = api::ToHttpError(s, request_id);
  if (v2) e.body["detail"] = e.body["error"]["message"];  // FastAPI clients read "detail"
  res.status = e.http_status;
  res.set_content(api::DumpJson(e.body), "application/json");
  if (e.http_status == 401) res.set_header("WWW-Authenticate", "Bearer");
}

// Sets the CORS response headers when the request's Origin is allowed; returns whether it is.
bool ApplyCors(const std::vector<std::string>& allowed, const httplib::Request& req,
               httplib::Response& res) {
  const std::string origin = req.get_header_value("Origin");
  const bool cors_ok = OriginAllowed(allowed, origin);
  if (cors_ok) {
    res.set_header("Access-Control-Allow-Origin", origin);
    res.set_header("Vary", "Origin");
    res.set_header("Access-Control-Expose-Headers", "X-Request-ID");
  }
  return cors_ok;
}

// OPTIONS (a CORS preflight or a plain question for Allow): answered here, no handler runs.
void AnswerOptions(const httplib::Request& req, api::Router::Outcome outcome,
                   const api::Router::Match& match, bool cors_ok, const std::string& request_id,
                   bool v2, httplib::Response& res) {
  if (outcome == api::Router::Outcome::kNotFound) {
    RenderFailure(Status::NotFound("no route for " + req.path), request_id, v2, res);
  } else if (!req.get_header_value("Access-Control-Request-Method").empty() && !cors_ok) {
    RenderFailure(Status::PermissionDenied("origin not allowed"), request_id, v2, res);
  } else {
    res.status = 204;
    res.set_header("Allow", JoinMethods(match.allowed_methods));
    if (cors_ok) {
      res.set_header("Access-Control-Allow-Methods", JoinMethods(match.allowed_methods));
      res.set_header("Access-Control-Allow-Headers",
                     "Authorization, X-API-Key, Content-Type, X-Request-ID");
      res.set_header("Access-Control-Max-Age", "600");
    }
  }
}

void AnswerMethodNotAllowed(const httplib::Request& req, const api::Router::Match& match,
                            const std::string& request_id, httplib::Response& res) {
  res.status = 405;
  res.set_header("Allow", JoinMethods(match.allowed_methods));
  res.set_content(
      api::DumpJson(RawError("method_not_allowed", req.method + " is not allowed on " + req.path,
                             request_id)),
      "application/json");
}

// The key presented with the request: who it is (ctx.key, ctx.actor) and whether it may call
// this route (scope, project-limited keys). OK when it may, else the refusal.
Status AuthenticateKey(KnowledgeBase* kb, const api::Route& route, const httplib::Request& req,
                       api::RequestContext& ctx) {
  const std::string secret = api::PresentedSecret(req.get_header_value("Authorization"),
                                                  req.get_header_value("X-API-Key"));
  if (secret.empty()) {
    return Status::Unauthenticated(
        "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'");
  }
  std::string key_id;
  auto key = kb->keys().Authenticate(secret, &key_id);
  if (!key.ok()) {
    if (!key_id.empty()) ctx.actor.id = key_id;
    // Storage failures stay 500s; only credential problems are 401.
    return key.status().code() == Code::kUnauthenticated
               ? key.status()
               : Status::Internal(key.status().ToString());
  }
  ctx.key = std::move(key).value();
  ctx.actor.id = ctx.key->id;
  ctx.actor.name = ctx.key->name;
  Status auth = api::CheckScope(*ctx.key, *route.scope);
  if (auth.ok() && route.unrestricted_only && ctx.KeyRestricted()) {
    auth = Status::PermissionDenied(
        "this key is limited to projects; the route needs "
        "a key for all projects");
  }
  if (auth.ok() && !route.project_param.empty() && ctx.KeyRestricted()) {
    auto project = kb->GetProject(ctx.Param(route.project_param));
    // Unknown projects are refused too: a limited key must not probe names.
    if (!project.ok() || !ctx.KeyAllowsProject(project->id)) {
      auth = Status::PermissionDenied("this key is not allowed on project '" +
                                      ctx.Param(route.project_param) + "'");
    }
  }
  return auth;
}

// Runs the route's handler and writes its reply (or its failure) into `res`.
void RunHandler(const api::Route& route, api::RequestContext& ctx, bool v2,
                httplib::Response& res) {
  Result<api::Reply> reply = route.handler(ctx);
  if (!reply.ok()) {
    RenderFailure(reply.status(), ctx.request_id, v2, res);
    return;
  }
  api::Reply& r = reply.value();
  res.status = r.status;
  for (auto& [k, v] : r.headers) res.set_header(k, v);
  if (r.status == 204) {
    // No body on 204.
  } else if (r.text) {
    res.set_content(*r.text, r.content_type);
  } else {
    res.set_content(api::DumpJson(r.body), "application/json");
  }
}

// A matched route with a body within the limit: the key (if the route needs one), then rate
// limit (429), the authentication outcome and the service mode (503), then the handler.
void ServeRoute(KnowledgeBase* kb, api::AccessControl& access, const ServerOptions& options,
                const api::Route& route, const httplib::Request& req, api::RequestContext& ctx,
                bool v2, httplib::Response& res) {
  Status auth;
  const bool needs_auth =
      route.scope.has_value() && !(route.pattern == "/metrics" && !options.metrics_require_auth);
  if (needs_auth) auth = AuthenticateKey(kb, route, req, ctx);
  // Rate limit (429), then the authentication outcome, then the service mode (503).
  int64_t retry_after = 0;
  auth = access.Admit(api::ClassifyRoute(route.method, route.pattern,
                                         needs_auth ? route.scope : std::optional<KeyScope>()),
                      ctx.key ? &*ctx.key : nullptr, auth, req.remote_addr, &retry_after);
  if (retry_after > 0) res.set_header("Retry-After", std::to_string(retry_after));
  if (!auth.ok()) {
    RenderFailure(auth, ctx.request_id, v2, res);
    LogInfo("access refused", api::DumpJson({{"request_id", ctx.request_id},
                                             {"key_id", ctx.actor.id},
                                             {"route", route.pattern},
                                             {"reason", auth.message()}}));
    return;
  }
  RunHandler(route, ctx, v2, res);
}

// The access-log line of one request.
void LogRequest(const httplib::Request& req, const httplib::Response& res,
                const api::RequestContext& ctx, const std::string& route_label, int64_t dur_us) {
  json fields = {{"request_id", ctx.request_id},
                 {"method", req.method},
                 {"route", route_label},
                 {"status", res.status},
                 {"duration_ms", static_cast<double>(dur_us) / 1000.0}};
  if (ctx.key)
    fields["key_id"] = ctx.key->id;
  else if (ctx.actor.id != "system")
    fields["key_id"] = ctx.actor.id;
  LogInfo("request", api::DumpJson(fields));
}

}  // namespace

void ApiServer::Dispatch(const httplib::Request& req, httplib::Response& res) {
  const int64_t start_us = MonotonicMicros();
  const std::string header_id = req.get_header_value("X-Request-ID");
  api::RequestContext ctx{req, SaneRequestId(header_id) ? header_id : NewUuid(), {}, {}, {}};
  std::string route_label = kUnmatchedRoute;
  const api::Route* audited_route = nullptr;
  bool v2 = false;

  try {
    const bool cors_ok = ApplyCors(options_.cors_origins, req, res);
    api::Router::Match match;
    const auto outcome = router_->Find(req.method, req.path, &match);
    audited_route = match.route;
    if (outcome != api::Router::Outcome::kNotFound) {
      // The pattern, never the raw path: bounded label cardinality.
      route_label = match.pattern;
      v2 = req.path.rfind("/api/v2/", 0) == 0;
    }

    // Address rules come first, before anything about the request is believed.
    const Status address = access_->CheckAddress(req.remote_addr);
    if (!address.ok()) {
      RenderFailure(address, ctx.request_id, v2, res);
      LogInfo("access refused", api::DumpJson({{"request_id", ctx.request_id},
                                               {"remote", req.remote_addr},
                                               {"reason", address.message()}}));
    } else if (req.method == "OPTIONS") {
      AnswerOptions(req, outcome, match, cors_ok, ctx.request_id, v2, res);
    } else if (outcome == api::Router::Outcome::kNotFound) {
      RenderFailure(Status::NotFound("no route for " + req.method + " " + req.path), ctx.request_id,
                    v2, res);
    } else if (outcome == api::Router::Outcome::kMethodNotAllowed) {
      AnswerMethodNotAllowed(req, match, ctx.request_id, res);
    } else if (static_cast<int64_t>(req.body.size()) > options_.max_body_bytes) {
      RenderFailure(Status::PayloadTooLarge("request body larger than " +
                                            std::to_string(options_.max_body_bytes) + " bytes"),
                    ctx.request_id, v2, res);
    } else {
      ctx.path_params = std::move(match.params);
      ServeRoute(kb_, *access_, options_, *match.route, req, ctx, v2, res);
    }
  } catch (const std::exception& e) {
    RenderFailure(Status::Internal(std::string("exception: ") + e.what()), ctx.request_id, v2, res);
  } catch (...) {
    RenderFailure(Status::Internal("unknown exception"), ctx.request_id, v2, res);
  }

  SetCommonHeaders(res, ctx.request_id);
  const int64_t dur_us = MonotonicMicros() - start_us;
  const std::string method = req.method == "HEAD" ? "GET" : req.method;
  metrics_->Add("kb_http_requests_total", {route_label, method, std::to_string(res.status)});
  metrics_->Observe("kb_http_request_duration_seconds", {route_label},
                    static_cast<double>(dur_us) / 1e6);
  LogRequest(req, res, ctx, route_label, dur_us);
  api::AuditRequest(ctx_.get(), {req, res, ctx.request_id, audited_route, &ctx});
}

}  // namespace kb
