// `serve` and `init`: the two commands that own a data directory's first start, which is when
// the admin key is created and shown — once, since only its hash is stored.
//
// serve blocks SIGINT and SIGTERM before any thread starts and waits for them on a dedicated
// thread, so a signal never interrupts a worker mid-write; it then stops the HTTP server and
// closes the knowledge base, which saves the vector indexes (a restart loads them instead of
// rebuilding).
#include <signal.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/server.h"
#include "audit/audit_log.h"
#include "backup/restore.h"
#include "backup/service.h"
#include "backup/shipper.h"
#include "cli/backend.h"
#include "cli/backup_settings.h"
#include "cli/commands.h"
#include "cli/output.h"
#include "common/clock.h"
#include "common/data_layout.h"
#include "common/dir_lock.h"
#include "common/file_util.h"
#include "common/logging.h"
#include "notify/notifier.h"

namespace kb::cli {
namespace {

void PrintAdminKeyOnce(const std::string& secret) {
  std::cout << "\nAdmin API key (shown once; it will NOT be shown again - store it now):\n\n"
            << "    " << secret << "\n\n"
            << "Use it as 'Authorization: Bearer <key>' or with --api-key / KB_API_KEY.\n"
            << std::endl;
}

ServerOptions MakeServerOptions(const Config& config) {
  ServerOptions options;
  options.host = config.host;
  options.port = config.port;
  if (config.max_body_bytes) options.max_body_bytes = *config.max_body_bytes;
  options.cors_origins = config.cors_origins;
  options.mcp_import_roots = config.mcp_import_roots;
  options.metrics_require_auth = config.metrics_require_auth;
  if (config.threads) options.threads = *config.threads;
  if (config.max_connections) options.transport.max_connections = *config.max_connections;
  if (config.max_connections_per_address) {
    options.transport.max_connections_per_address = *config.max_connections_per_address;
  }
  if (config.http_idle_timeout_ms) options.transport.idle_timeout_ms = *config.http_idle_timeout_ms;
  if (config.http_header_timeout_ms) {
    options.transport.header_timeout_ms = *config.http_header_timeout_ms;
  }
  if (config.http_body_timeout_ms) {
    // One number for the body: the longest wait for any part of it and the grace before the
    // minimum rate applies.
    options.transport.body_read_timeout_ms = *config.http_body_timeout_ms;
    options.transport.body_grace_ms = *config.http_body_timeout_ms;
  }
  if (config.rate_limit_per_second) {
    options.rate_limit_per_second = static_cast<double>(*config.rate_limit_per_second);
  }
  if (config.rate_limit_burst)
    options.rate_limit_burst = static_cast<double>(*config.rate_limit_burst);
  options.tls_cert_file = config.tls_cert_file;
  options.tls_key_file = config.tls_key_file;
  return options;
}

std::string HostForUrl(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

// restore_if_empty: a data directory without a catalog (a fresh volume under a rescheduled
// server) is first restored from the latest valid full snapshot of backup_repository. An empty
// repository is a first start (serve empty); a repository that cannot be read or holds no valid
// full snapshot stops the start: serving an empty directory would hide the loss.
Status RestoreIfEmpty(const Config& config) {
  using nlohmann::json;
  if (!config.restore_if_empty || PathExists(layout::CatalogDb(config.data_dir))) {
    return Status::OK();
  }
  if (config.backup_repository.empty()) {
    return Status::InvalidArgument(
        "restore_if_empty needs backup_repository (the local default repository lives inside "
        "the data directory, which is empty)");
  }
  const int64_t started = MonotonicMicros();
  KB_ASSIGN_OR_RETURN(std::unique_ptr<repo::Repository> repo,
                      repo::OpenRepository(config.backup_repository, KeyFromConfig(config),
                                           BlobOptionsFromConfig(config)));
  // Only the names: SelectSnapshot below reads the manifests.
  KB_ASSIGN_OR_RETURN(std::vector<std::string> ids, repo->ListSnapshotIds());
  if (ids.empty()) {
    LogWarn(
        "restore_if_empty: the data directory is empty and the repository holds no "
        "snapshot; starting empty",
        json{{"data_dir", config.data_dir}, {"repository", config.backup_repository}}.dump());
    return Status::OK();
  }
  backup::SnapshotSelector selector;
  selector.latest_valid = true;
  selector.need_full = true;
  backup::Selection chosen;
  Result<backup::WholeRestoreReport> report = backup::RestoreDataDirectoryFrom(
      *repo, selector, config.data_dir, nullptr, backup::WholeRestoreOptions{}, &chosen);
  for (const auto& s : chosen.skipped) {
    LogWarn("restore_if_empty: skipped a snapshot",
            json{{"snapshot", s.id}, {"reason", s.reason}}.dump());
  }
  KB_RETURN_IF_ERROR(report.status().WithContext(chosen.manifest.id.empty()
                                                     ? "restore_if_empty"
                                                     : "restoring snapshot " + chosen.manifest.id));
  AuditEvent event;
  event.route = "serve";
  event.action = "data.restore";
  event.outcome = "ok";
  event.detail = "restore_if_empty: the data directory had no catalog; restored snapshot " +
                 chosen.manifest.id + " (" + chosen.manifest.time +
                 "); audit log: " + report->audit_log;
  RecordCliAudit(config.data_dir, std::move(event));
  LogInfo("restore_if_empty: restored the data directory before serving",
          json{{"snapshot", chosen.manifest.id},
               {"snapshot_time", chosen.manifest.time},
               {"audit_log", report->audit_log},
               {"warnings", report->warnings},
               {"skipped", chosen.skipped.size()},
               {"seconds", static_cast<double>(MonotonicMicros() - started) / 1e6}}
              .dump());
  return Status::OK();
}

// The journal shipper for `config` (null: no repository configured, or ship_interval 0). It
// opens its own connection to the repository, with the backups' URL, key and S3 settings.
Result<std::unique_ptr<backup::JournalShipper>> StartShipper(const Config& config,
                                                             KnowledgeBase* kb) {
  KB_ASSIGN_OR_RETURN(int64_t interval, ParseShipInterval(config.ship_interval));
  if (config.backup_repository.empty() || interval == 0) {
    return std::unique_ptr<backup::JournalShipper>();
  }
  backup::ShipperOptions options;
  options.interval_ms = interval;
  options.open_repository = [url = config.backup_repository, key = KeyFromConfig(config),
                             blob = BlobOptionsFromConfig(config), clock = kb->clock()] {
    return repo::OpenRepository(url, key, blob, clock);
  };
  return backup::JournalShipper::Start(kb, options);
}

int RunServe(const CommonOptions& common) {
  int exit_code = kExitOk;
  std::optional<Config> config = LoadCommandConfig(common, /*server_defaults=*/true, &exit_code);
  if (!config) return exit_code;

  // Before any thread exists, so that every thread inherits the mask and only the waiter below
  // ever sees these signals.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  KbOptions kb_options = MakeKbOptions(*config);
  // The server checks its data directory in the background: once after start, then periodically.
  kb_options.integrity_check_interval_ms =
      config->integrity_check_interval_ms.value_or(kDefaultIntegrityCheckIntervalMs);
  if (Status s = RestoreIfEmpty(*config); !s.ok()) {
    return ReportError(s.WithContext("restore_if_empty"));
  }
  // One server per data directory, and no whole restore under a running one (dir_lock.h).
  if (Status s = MakeDirs(config->data_dir); !s.ok()) {
    return ReportError(s.WithContext("cannot create " + config->data_dir));
  }
  Result<std::unique_ptr<DataDirLock>> lock = DataDirLock::Acquire(config->data_dir, "server");
  if (!lock.ok()) return ReportError(lock.status());
  // The audit log next, so that everything after it can record to it; it is closed last.
  audit::AuditLogOptions audit_options;
  audit_options.retention_ms = config->audit_retention_ms.value_or(audit::kDefaultAuditRetentionMs);
  audit_options.retention_interval_ms = audit::kAuditRetentionIntervalMs;
  auto audit_log = audit::AuditLog::Open(layout::AuditDb(config->data_dir), nullptr, audit_options);
  if (!audit_log.ok()) {
    return ReportError(audit_log.status().WithContext("cannot open the audit log"));
  }
  // Notifications listen to what is recorded: every part records through `sink`, which hands
  // each event to the notifier and then to the audit log.
  Result<notify::Format> notify_format = notify::ParseFormat(config->notify_format);
  if (!notify_format.ok()) return ReportError(notify_format.status(), /*usage=*/true);
  std::unique_ptr<notify::Notifier> notifier;
  std::unique_ptr<notify::NotifyingSink> notifying_sink;
  AuditSink* sink = audit_log->get();
  if (!config->notify_webhook_url.empty()) {
    notify::NotifierOptions no;
    no.webhook_urls = config->notify_webhook_url;
    no.format = *notify_format;
    no.hostname = HostName();
    auto started = notify::Notifier::Start(std::move(no));
    if (!started.ok()) return ReportError(started.status(), /*usage=*/true);
    notifier = std::move(started).value();
    notifying_sink = std::make_unique<notify::NotifyingSink>(audit_log->get(), notifier.get());
    sink = notifying_sink.get();
  }
  kb_options.audit = sink;
  // The purge job: items soft-deleted longer than deletion_grace_period go for good.
  kb_options.purge_interval_ms = config->purge_interval_ms.value_or(kDefaultPurgeIntervalMs);
  Result<std::unique_ptr<KnowledgeBase>> kb = KnowledgeBase::Open(kb_options);
  if (!kb.ok()) return ReportError(kb.status().WithContext("cannot open " + config->data_dir));
  Result<std::optional<std::string>> admin = (*kb)->keys().EnsureAdminKey(config->admin_token);
  if (!admin.ok()) return ReportError(admin.status().WithContext("cannot create the admin key"));
  // Shown before the server starts: if binding fails, the key (stored only as a hash) must not
  // have been created unseen.
  if (admin->has_value()) PrintAdminKeyOnce(**admin);

  Result<backup::BackupServiceOptions> backup_options = BackupServiceOptionsFromConfig(*config);
  if (!backup_options.ok()) {
    (*kb)->Close();
    return ReportError(backup_options.status(), /*usage=*/true);
  }
  backup_options->audit = sink;
  auto backups = backup::BackupService::Start(kb->get(), *backup_options);
  if (!backups.ok()) {
    (*kb)->Close();
    return ReportError(backups.status().WithContext("cannot start backups"));
  }
  // Continuous journal shipping (issue 13): only into a configured repository (the local
  // default protects against mistakes, not against losing the disk the journal is on).
  Result<std::unique_ptr<backup::JournalShipper>> shipper = StartShipper(*config, kb->get());
  if (!shipper.ok()) {
    (*backups)->Stop();
    (*kb)->Close();
    return ReportError(shipper.status().WithContext("cannot start journal shipping"));
  }
  ServerOptions server_options = MakeServerOptions(*config);
  server_options.backups = backups->get();
  server_options.shipper = shipper->get();
  server_options.audit = audit_log->get();
  server_options.audit_sink = sink;
  if (notifier) server_options.notify = &notifier->counters();
  server_options.audit_reads = config->audit_reads;
  auto server = ApiServer::Start(kb->get(), server_options);
  if (!server.ok()) {
    if (*shipper) (*shipper)->Stop();
    (*backups)->Stop();
    (*kb)->Close();
    return ReportError(server.status().WithContext("cannot start the server"));
  }
  const bool https = !config->tls_cert_file.empty();
  std::string url = (https ? "https://" : "http://") + HostForUrl(config->host) + ":" +
                    std::to_string((*server)->port());
  std::cout << "KnowledgeBeast " << KB_VERSION << " serving " << config->data_dir << " at " << url
            << std::endl;
  LogInfo(
      "started",
      nlohmann::json{{"version", KB_VERSION}, {"url", url}, {"data_dir", config->data_dir}}.dump());

  std::thread waiter([&signals, srv = server->get()] {
    int sig = 0;
    sigwait(&signals, &sig);
    LogInfo("shutting down",
            nlohmann::json{{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}}.dump());
    srv->Stop();
  });
  (*server)->Wait();
  // Stopped by something other than a signal (e.g. a listener failure): release the waiter.
  pthread_kill(waiter.native_handle(), SIGTERM);
  waiter.join();
  // The shipper's last round ships what was committed before the stop.
  if (*shipper) (*shipper)->Stop();
  (*backups)->Stop();
  (*kb)->Close();
  if (notifier) notifier->Stop();  // one last attempt at what is queued
  (*audit_log)->Close();  // drains the queue: every request answered is recorded
  LogInfo("stopped");
  return kExitOk;
}

int RunInit(const CommonOptions& common) {
  int exit_code = kExitOk;
  std::optional<Config> config = LoadCommandConfig(common, /*server_defaults=*/false, &exit_code);
  if (!config) return exit_code;
  Result<std::unique_ptr<KnowledgeBase>> kb = KnowledgeBase::Open(MakeKbOptions(*config));
  if (!kb.ok()) return ReportError(kb.status().WithContext("cannot open " + config->data_dir));
  Result<std::optional<std::string>> admin = (*kb)->keys().EnsureAdminKey(config->admin_token);
  (*kb)->Close();
  if (!admin.ok()) return ReportError(admin.status().WithContext("cannot create the admin key"));

  const bool created = admin->has_value();
  if (common.json) {
    nlohmann::json out = {{"data_dir", config->data_dir},
                          {"admin_key", created ? nlohmann::json(**admin) : nlohmann::json()}};
    PrintJson(out);
  } else if (created) {
    std::cout << "Initialised " << config->data_dir << std::endl;
    PrintAdminKeyOnce(**admin);
  } else if (!config->admin_token.empty()) {
    std::cout << config->data_dir << " is ready; the admin key is the token you supplied "
              << "(unless an admin key existed already)." << std::endl;
  } else {
    std::cout << config->data_dir
              << " is ready; an admin key already exists (it is never shown again)." << std::endl;
  }
  return kExitOk;
}

}  // namespace

void RegisterServeCommand(CLI::App* root, CommandRegistry* registry) {
  auto common = std::make_shared<CommonOptions>();
  CLI::App* cmd = root->add_subcommand("serve", "Start the HTTP server");
  cmd->footer(
      "Prints the URL it serves. On the first start of a data directory it also prints the "
      "admin API key, once: only its hash is stored. SIGINT or SIGTERM stops it cleanly (in-flight "
      "requests finish, vector indexes are saved). Logs are JSON lines on stderr unless "
      "--log-format text. The service mode (knowledgebeast lockdown) and the address rules "
      "(/api/v1/admin/ip-rules) are kept in the data directory and apply from the first "
      "request. Settings: docs/CONFIG.md.");
  AddConfigOptions(cmd, common.get());
  AddOptionalString(cmd, "--host", &common->flags.host,
                    "listen address (default 127.0.0.1; $KB_HOST)");
  AddOptionalString(cmd, "--port", &common->flags.port,
                    "listen port, 0 = any free port (default 8080; $KB_PORT)");
  AddOptionalString(cmd, "--admin-token", &common->flags.admin_token,
                    "first start only: use this secret for the admin key ($KB_ADMIN_TOKEN)");
  AddOptionalString(cmd, "--max-body-bytes", &common->flags.max_body_bytes,
                    "largest request body accepted ($KB_MAX_BODY_BYTES)");
  AddOptionalString(cmd, "--cors-origins", &common->flags.cors_origins,
                    "comma-separated allowed CORS origins ($KB_CORS_ORIGINS)");
  AddOptionalString(cmd, "--backup-copy-to", &common->flags.backup_copy_to,
                    "copy each new snapshot into these repositories too: comma-separated "
                    "\"URL key_file=PATH\" entries ($KB_BACKUP_COPY_TO)");
  AddOptionalString(cmd, "--ship-interval", &common->flags.ship_interval,
                    "ship journal entries to backup_repository this often (250ms; 0 = off)");
  AddOptionalString(cmd, "--ingest-root", &common->flags.ingest_root,
                    "directory the v2 API's file_path ingestion may read ($KB_INGEST_ROOT)");
  AddOptionalString(cmd, "--mcp-import-roots", &common->flags.mcp_import_roots,
                    "comma-separated directories the MCP ingest_file tool may read below "
                    "($KB_MCP_IMPORT_ROOTS)");
  AddOptionalString(cmd, "--integrity-check-interval", &common->flags.integrity_check_interval,
                    "check every database and vector index once at start and then this often, "
                    "e.g. 12h; 0 = never (default 24h; $KB_INTEGRITY_CHECK_INTERVAL)");
  AddOptionalString(cmd, "--rate-limit-per-second", &common->flags.rate_limit_per_second,
                    "requests per second per API key (and per address without a valid key); "
                    "0 = no limit (default 1000; $KB_RATE_LIMIT_PER_SECOND)");
  AddOptionalString(cmd, "--rate-limit-burst", &common->flags.rate_limit_burst,
                    "requests a key may make at once before the rate applies "
                    "(default 2000; $KB_RATE_LIMIT_BURST)");
  AddOptionalString(cmd, "--threads", &common->flags.threads,
                    "worker threads that run requests (default 8; $KB_THREADS)");
  AddOptionalString(cmd, "--max-connections", &common->flags.max_connections,
                    "open HTTP connections allowed; beyond it 503 + Retry-After "
                    "(default 4096; $KB_MAX_CONNECTIONS)");
  AddOptionalString(cmd, "--max-connections-per-address",
                    &common->flags.max_connections_per_address,
                    "open HTTP connections allowed from one client address; 0 = no cap "
                    "(default 256; $KB_MAX_CONNECTIONS_PER_ADDRESS)");
  AddOptionalString(cmd, "--http-idle-timeout", &common->flags.http_idle_timeout,
                    "close a connection that sends no request for this long "
                    "(default 30s; $KB_HTTP_IDLE_TIMEOUT)");
  AddOptionalString(cmd, "--http-header-timeout", &common->flags.http_header_timeout,
                    "408 for a request whose header block takes longer "
                    "(default 10s; $KB_HTTP_HEADER_TIMEOUT)");
  AddOptionalString(cmd, "--http-body-timeout", &common->flags.http_body_timeout,
                    "408 for a body that stalls this long, or that after this long arrives "
                    "slower than 16 KiB/s (default 10s; $KB_HTTP_BODY_TIMEOUT)");
  cmd->add_flag_callback(
      "--restore-if-empty", [common] { common->flags.restore_if_empty = "true"; },
      "when the data directory has no catalog, restore the latest valid snapshot of "
      "backup_repository before serving ($KB_RESTORE_IF_EMPTY)");
  AddOptionalString(cmd, "--tls-cert-file", &common->flags.tls_cert_file,
                    "serve HTTPS with this PEM certificate (chain); needs --tls-key-file "
                    "($KB_TLS_CERT_FILE)");
  AddOptionalString(cmd, "--tls-key-file", &common->flags.tls_key_file,
                    "the PEM private key of --tls-cert-file, unencrypted ($KB_TLS_KEY_FILE)");
  AddOptionalString(cmd, "--deletion-grace-period", &common->flags.deletion_grace_period,
                    "purge soft-deleted documents and projects this long after deletion, e.g. "
                    "7d (default 30d; $KB_DELETION_GRACE_PERIOD)");
  registry->Add(cmd, [common] { return RunServe(*common); });
}

void RegisterInitCommand(CLI::App* root, CommandRegistry* registry) {
  auto common = std::make_shared<CommonOptions>();
  CLI::App* cmd =
      root->add_subcommand("init", "Create a data directory and print its admin API key");
  cmd->footer(
      "Opens the data directory, creating it if needed. If it has no admin key yet, one is "
      "created and printed, once: only its hash is stored. Running init again prints no key.");
  AddConfigOptions(cmd, common.get());
  AddOptionalString(cmd, "--admin-token", &common->flags.admin_token,
                    "use this secret for the admin key instead of a random one ($KB_ADMIN_TOKEN)");
  AddJsonFlag(cmd, common.get());
  registry->Add(cmd, [common] { return RunInit(*common); });
}

}  // namespace kb::cli
