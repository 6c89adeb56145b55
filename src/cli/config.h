// Configuration of the `knowledgebeast` program: one struct, filled from four layers so that a
// deployment can keep a file under version control, override it per environment with `KB_*`
// variables, and override both on a command line.
//
// Precedence, lowest to highest: built-in defaults < config file (`--config FILE` or
// `KB_CONFIG`) < `KB_*` environment variables < command-line flags. Every setting, its file key,
// variable, flag and default is documented in docs/CONFIG.md; the table in config.cc is the one
// place that maps names to fields.
//
// Validation is strict because a typo in a config file silently ignored is a production outage
// waiting to happen: unknown file keys, wrong JSON types and malformed values are all errors that
// name the setting and where it came from. The CLI turns them into exit code 2.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace kb::cli {

inline constexpr char kDefaultDataDir[] = "./data";
inline constexpr char kDefaultHost[] = "127.0.0.1";
inline constexpr int kDefaultPort = 8080;
inline constexpr char kDefaultLogLevel[] = "info";
inline constexpr char kDefaultLogFormat[] = "json";

struct Config {
  // Where the catalog and project databases live (server and direct-mode commands).
  std::string data_dir = kDefaultDataDir;
  // Server listen address.
  std::string host = kDefaultHost;
  int port = kDefaultPort;  // 0 = any free port (the URL printed at start names it)
  // First start only: the admin key's secret instead of a random one.
  std::string admin_token;
  // "debug" | "info" | "warn" | "error". Empty = not configured (each command picks its own).
  std::string log_level;
  // "json" (one object per line) or "text". Empty = not configured (serve: json, others: text).
  std::string log_format;
  // Unset = the API layer's default (see docs/CONFIG.md).
  std::optional<int64_t> max_body_bytes;
  std::optional<int64_t> max_document_bytes;
  std::vector<std::string> cors_origins;
  // Root directory for the v2 API's `file_path` ingestion; empty disables it.
  std::string ingest_root;
  // Directories the MCP ingest_file tool may read below (`mcp` and `serve`); empty = none.
  std::vector<std::string> mcp_import_roots;
  bool metrics_require_auth = false;
  std::optional<int> threads;  // HTTP worker threads; unset = the API layer's default
  // The HTTP connection layer (api/http_transport.h); unset = its defaults.
  std::optional<int64_t> max_connections;
  std::optional<int64_t> max_connections_per_address;  // 0 = no per-address cap
  std::optional<int64_t> http_idle_timeout_ms;
  std::optional<int64_t> http_header_timeout_ms;
  std::optional<int64_t> http_body_timeout_ms;
  // How often `serve` checks the data directory (a duration; also once at start). Unset =
  // kDefaultIntegrityCheckIntervalMs (src/service/types.h); 0 = no background checks.
  std::optional<int64_t> integrity_check_interval_ms;
  // Rate limits per API key (and per address for requests without a valid key): requests per
  // second and bucket size. Unset = api::kDefaultRatePerSecond / kDefaultRateBurst
  // (src/api/access_control.h); rate 0 = no limit.
  std::optional<int64_t> rate_limit_per_second;
  std::optional<int64_t> rate_limit_burst;
  // HTTPS: PEM certificate (chain) and private key; both or neither.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Soft-deleted documents and projects are purged this long after deletion (a duration). Unset
  // = kDefaultDeletionGracePeriodMs (30 days). Used by `serve` and by `purge`.
  std::optional<int64_t> deletion_grace_period_ms;
  // How often `serve` runs the purge job (a duration). Unset = kDefaultPurgeIntervalMs (1 h);
  // 0 = never (then only `knowledgebeast purge` purges).
  std::optional<int64_t> purge_interval_ms;
  // Audit log (docs/format/AUDIT_LOG.md): also record successful reads; how long entries are
  // kept (unset = kDefaultAuditRetentionMs, src/audit/audit_log.h; 0 = forever).
  bool audit_reads = false;
  // serve: with no catalog in data_dir, restore the latest valid snapshot first (issue 12).
  bool restore_if_empty = false;
  std::optional<int64_t> audit_retention_ms;
  // Client commands: a running server's base URL (switches them to remote mode) and its key.
  std::string url;
  std::string api_key;
  // Backups (docs/CONFIG.md "Backups"). Empty repository = the server's local default under
  // the data directory. The passphrase is never a setting: KB_BACKUP_PASSWORD only.
  std::string backup_repository;
  std::string backup_key_file;
  std::string backup_interval = "1h";  // a duration (repo/retention.h); "0" = no schedule
  // Continuous journal shipping into backup_repository (backup/shipper.h): "250ms", "1s", ...;
  // "0" = off. Only with a configured repository.
  std::string ship_interval = "250ms";
  std::string verify_interval = "1d";  // scheduled verification; "0" = none
  std::string verify_full_cycle = "28d";  // every pack's data read once per cycle
  std::string backup_retention;        // "" = the default policy; see ParseRetentionPolicy
  // Second repositories the server copies each new snapshot into: "URL key_file=PATH" each
  // (see CopyTargetsFromConfig in backup_settings.h).
  std::vector<std::string> backup_copy_to;
  // Webhooks told when an operator must act (notify/notifier.h); empty = none.
  std::vector<std::string> notify_webhook_url;
  std::string notify_format = "json";  // json | slack
  // How far behind its database a backup may leave a project's vector index (a fraction of its
  // live documents, as journal entries; "2%" or "0.02"): see backup::SourceOptions::index_max_lag.
  std::string backup_index_max_lag = "2%";
  // What a backup checks of each project state it copies: full | checksum | off
  // (backup::SourceCheckLevel).
  std::string backup_source_check = "full";
  std::string backup_s3_endpoint;  // else AWS_ENDPOINT_URL
  std::string backup_s3_region;    // else AWS_REGION / AWS_DEFAULT_REGION
  std::optional<bool> backup_s3_path_style;
  // The file the config was read from, if any (for messages).
  std::string config_file;
};

// Reads an environment variable; nullopt if unset. Injected so tests need not mutate environ.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup ProcessEnvironment();

// Values given on the command line, as text; unset = not given. Parsed with the same rules as
// environment variables so that `--port x` and `KB_PORT=x` fail the same way.
struct FlagValues {
  std::string config_file;  // --config
  std::optional<std::string> data_dir;
  std::optional<std::string> host;
  std::optional<std::string> port;
  std::optional<std::string> admin_token;
  std::optional<std::string> log_level;
  std::optional<std::string> log_format;
  std::optional<std::string> max_body_bytes;
  std::optional<std::string> cors_origins;
  std::optional<std::string> ingest_root;
  std::optional<std::string> mcp_import_roots;  // comma-separated
  std::optional<std::string> url;
  std::optional<std::string> api_key;
  std::optional<std::string> integrity_check_interval;
  std::optional<std::string> deletion_grace_period;
  std::optional<std::string> backup_repository;  // --repo
  std::optional<std::string> backup_key_file;    // --key-file
  std::optional<std::string> backup_copy_to;     // --backup-copy-to (comma-separated)
  std::optional<std::string> ship_interval;      // --ship-interval
  std::optional<std::string> rate_limit_per_second;
  std::optional<std::string> rate_limit_burst;
  std::optional<std::string> tls_cert_file;
  std::optional<std::string> tls_key_file;
  std::optional<std::string> threads;
  std::optional<std::string> max_connections;
  std::optional<std::string> max_connections_per_address;
  std::optional<std::string> http_idle_timeout;
  std::optional<std::string> http_header_timeout;
  std::optional<std::string> http_body_timeout;
  std::optional<std::string> restore_if_empty;  // "true" when --restore-if-empty is given
};

// Builds the effective configuration from all four layers. InvalidArgument (naming the key,
// variable or flag) for unknown file keys, wrong types or bad values; NotFound/IOError if the
// named config file cannot be read.
Result<Config> LoadConfig(const FlagValues& flags, const EnvLookup& env);

// The individual layers, exposed for tests. Each overwrites only what its source sets.
// `origin` names the source in error messages (e.g. the file name).
Status ApplyConfigJson(std::string_view json_text, std::string_view origin, Config* config);
Status ApplyEnvironment(const EnvLookup& env, Config* config);
Status ApplyFlags(const FlagValues& flags, Config* config);

// One row of the settings table, for `--help` texts and docs consistency checks.
struct SettingInfo {
  std::string_view key;   // config file key
  std::string_view env;   // environment variable
  std::string_view flag;  // command-line flag, empty if none
};
const std::vector<SettingInfo>& AllSettings();

}  // namespace kb::cli
