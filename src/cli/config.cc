// The settings table and the four configuration layers (see config.h for the contract).
//
// Every setting is one row below: its file key, environment variable, flag, kind and field.
// Text sources (environment, flags) and JSON (the file) are both reduced to a typed Value by
// the row's kind, then stored by one setter, so every source obeys the same validation.
#include "cli/config.h"

#include <charconv>
#include <cstdlib>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <utility>
#include <variant>

#include "common/file_util.h"
#include "common/logging.h"
#include "common/text_util.h"
#include "repo/retention.h"

namespace kb::cli {
namespace {

using Json = nlohmann::json;

enum class Kind {
  kString,
  kPort,
  kPositiveInt,
  kCount,
  kSize,
  kBool,
  kList,
  kLogLevel,
  kLogFormat,
  kUrl,
  kDuration
};

using Value = std::variant<std::string, int64_t, bool, std::vector<std::string>>;

struct Setting {
  std::string_view key;
  std::string_view env;
  std::string_view flag;
  Kind kind;
  void (*store)(Config*, Value&&);
};

template <typename T>
T Take(Value&& v) {
  return std::get<T>(std::move(v));
}

const std::vector<Setting>& Table() {
  static const std::vector<Setting> kTable = {
      {"data_dir", "KB_DATA_DIR", "--data-dir", Kind::kString,
       [](Config* c, Value&& v) { c->data_dir = Take<std::string>(std::move(v)); }},
      {"host", "KB_HOST", "--host", Kind::kString,
       [](Config* c, Value&& v) { c->host = Take<std::string>(std::move(v)); }},
      {"port", "KB_PORT", "--port", Kind::kPort,
       [](Config* c, Value&& v) { c->port = static_cast<int>(Take<int64_t>(std::move(v))); }},
      {"admin_token", "KB_ADMIN_TOKEN", "--admin-token", Kind::kString,
       [](Config* c, Value&& v) { c->admin_token = Take<std::string>(std::move(v)); }},
      {"log_level", "KB_LOG_LEVEL", "--log-level", Kind::kLogLevel,
       [](Config* c, Value&& v) { c->log_level = Take<std::string>(std::move(v)); }},
      {"log_format", "KB_LOG_FORMAT", "--log-format", Kind::kLogFormat,
       [](Config* c, Value&& v) { c->log_format = Take<std::string>(std::move(v)); }},
      {"max_body_bytes", "KB_MAX_BODY_BYTES", "--max-body-bytes", Kind::kSize,
       [](Config* c, Value&& v) { c->max_body_bytes = Take<int64_t>(std::move(v)); }},
      {"max_document_bytes", "KB_MAX_DOCUMENT_BYTES", "", Kind::kSize,
       [](Config* c, Value&& v) { c->max_document_bytes = Take<int64_t>(std::move(v)); }},
      {"cors_origins", "KB_CORS_ORIGINS", "--cors-origins", Kind::kList,
       [](Config* c, Value&& v) {
         c->cors_origins = Take<std::vector<std::string>>(std::move(v));
       }},
      {"ingest_root", "KB_INGEST_ROOT", "--ingest-root", Kind::kString,
       [](Config* c, Value&& v) { c->ingest_root = Take<std::string>(std::move(v)); }},
      {"mcp_import_roots", "KB_MCP_IMPORT_ROOTS", "--mcp-import-roots", Kind::kList,
       [](Config* c, Value&& v) {
         c->mcp_import_roots = Take<std::vector<std::string>>(std::move(v));
       }},
      {"metrics_require_auth", "KB_METRICS_REQUIRE_AUTH", "", Kind::kBool,
       [](Config* c, Value&& v) { c->metrics_require_auth = Take<bool>(std::move(v)); }},
      {"threads", "KB_THREADS", "--threads", Kind::kPositiveInt,
       [](Config* c, Value&& v) { c->threads = static_cast<int>(Take<int64_t>(std::move(v))); }},
      {"max_connections", "KB_MAX_CONNECTIONS", "--max-connections", Kind::kPositiveInt,
       [](Config* c, Value&& v) { c->max_connections = Take<int64_t>(std::move(v)); }},
      {"max_connections_per_address", "KB_MAX_CONNECTIONS_PER_ADDRESS",
       "--max-connections-per-address", Kind::kCount,
       [](Config* c, Value&& v) { c->max_connections_per_address = Take<int64_t>(std::move(v)); }},
      {"http_idle_timeout", "KB_HTTP_IDLE_TIMEOUT", "--http-idle-timeout", Kind::kDuration,
       [](Config* c, Value&& v) { c->http_idle_timeout_ms = Take<int64_t>(std::move(v)); }},
      {"http_header_timeout", "KB_HTTP_HEADER_TIMEOUT", "--http-header-timeout", Kind::kDuration,
       [](Config* c, Value&& v) { c->http_header_timeout_ms = Take<int64_t>(std::move(v)); }},
      {"http_body_timeout", "KB_HTTP_BODY_TIMEOUT", "--http-body-timeout", Kind::kDuration,
       [](Config* c, Value&& v) { c->http_body_timeout_ms = Take<int64_t>(std::move(v)); }},
      {"integrity_check_interval", "KB_INTEGRITY_CHECK_INTERVAL", "--integrity-check-interval",
       Kind::kDuration,
       [](Config* c, Value&& v) { c->integrity_check_interval_ms = Take<int64_t>(std::move(v)); }},
      {"deletion_grace_period", "KB_DELETION_GRACE_PERIOD", "--deletion-grace-period",
       Kind::kDuration,
       [](Config* c, Value&& v) { c->deletion_grace_period_ms = Take<int64_t>(std::move(v)); }},
      {"purge_interval", "KB_PURGE_INTERVAL", "", Kind::kDuration,
       [](Config* c, Value&& v) { c->purge_interval_ms = Take<int64_t>(std::move(v)); }},
      {"restore_if_empty", "KB_RESTORE_IF_EMPTY", "--restore-if-empty", Kind::kBool,
       [](Config* c, Value&& v) { c->restore_if_empty = Take<bool>(std::move(v)); }},
      {"audit_reads", "KB_AUDIT_READS", "", Kind::kBool,
       [](Config* c, Value&& v) { c->audit_reads = Take<bool>(std::move(v)); }},
      {"audit_retention", "KB_AUDIT_RETENTION", "", Kind::kDuration,
       [](Config* c, Value&& v) { c->audit_retention_ms = Take<int64_t>(std::move(v)); }},
      {"url", "KB_URL", "--url", Kind::kUrl,
       [](Config* c, Value&& v) { c->url = Take<std::string>(std::move(v)); }},
      {"backup_repository", "KB_BACKUP_REPOSITORY", "--repo", Kind::kString,
       [](Config* c, Value&& v) { c->backup_repository = Take<std::string>(std::move(v)); }},
      {"backup_key_file", "KB_BACKUP_KEY_FILE", "--key-file", Kind::kString,
       [](Config* c, Value&& v) { c->backup_key_file = Take<std::string>(std::move(v)); }},
      {"backup_copy_to", "KB_BACKUP_COPY_TO", "--backup-copy-to", Kind::kList,
       [](Config* c, Value&& v) {
         c->backup_copy_to = Take<std::vector<std::string>>(std::move(v));
       }},
      {"notify_webhook_url", "KB_NOTIFY_WEBHOOK_URL", "", Kind::kList,
       [](Config* c, Value&& v) {
         c->notify_webhook_url = Take<std::vector<std::string>>(std::move(v));
       }},
      {"notify_format", "KB_NOTIFY_FORMAT", "", Kind::kString,
       [](Config* c, Value&& v) { c->notify_format = Take<std::string>(std::move(v)); }},
      {"backup_interval", "KB_BACKUP_INTERVAL", "", Kind::kString,
       [](Config* c, Value&& v) { c->backup_interval = Take<std::string>(std::move(v)); }},
      {"ship_interval", "KB_SHIP_INTERVAL", "--ship-interval", Kind::kString,
       [](Config* c, Value&& v) { c->ship_interval = Take<std::string>(std::move(v)); }},
      {"verify_interval", "KB_VERIFY_INTERVAL", "", Kind::kString,
       [](Config* c, Value&& v) { c->verify_interval = Take<std::string>(std::move(v)); }},
      {"verify_full_cycle", "KB_VERIFY_FULL_CYCLE", "", Kind::kString,
       [](Config* c, Value&& v) { c->verify_full_cycle = Take<std::string>(std::move(v)); }},
      {"backup_retention", "KB_BACKUP_RETENTION", "", Kind::kString,
       [](Config* c, Value&& v) { c->backup_retention = Take<std::string>(std::move(v)); }},
      {"backup_index_max_lag", "KB_BACKUP_INDEX_MAX_LAG", "", Kind::kString,
       [](Config* c, Value&& v) { c->backup_index_max_lag = Take<std::string>(std::move(v)); }},
      {"backup_source_check", "KB_BACKUP_SOURCE_CHECK", "", Kind::kString,
       [](Config* c, Value&& v) { c->backup_source_check = Take<std::string>(std::move(v)); }},
      {"backup_s3_endpoint", "KB_BACKUP_S3_ENDPOINT", "", Kind::kString,
       [](Config* c, Value&& v) { c->backup_s3_endpoint = Take<std::string>(std::move(v)); }},
      {"backup_s3_region", "KB_BACKUP_S3_REGION", "", Kind::kString,
       [](Config* c, Value&& v) { c->backup_s3_region = Take<std::string>(std::move(v)); }},
      {"backup_s3_path_style", "KB_BACKUP_S3_PATH_STYLE", "", Kind::kBool,
       [](Config* c, Value&& v) { c->backup_s3_path_style = Take<bool>(std::move(v)); }},
      {"api_key", "KB_API_KEY", "--api-key", Kind::kString,
       [](Config* c, Value&& v) { c->api_key = Take<std::string>(std::move(v)); }},
      {"rate_limit_per_second", "KB_RATE_LIMIT_PER_SECOND", "--rate-limit-per-second", Kind::kCount,
       [](Config* c, Value&& v) { c->rate_limit_per_second = Take<int64_t>(std::move(v)); }},
      {"rate_limit_burst", "KB_RATE_LIMIT_BURST", "--rate-limit-burst", Kind::kPositiveInt,
       [](Config* c, Value&& v) { c->rate_limit_burst = Take<int64_t>(std::move(v)); }},
      {"tls_cert_file", "KB_TLS_CERT_FILE", "--tls-cert-file", Kind::kString,
       [](Config* c, Value&& v) { c->tls_cert_file = Take<std::string>(std::move(v)); }},
      {"tls_key_file", "KB_TLS_KEY_FILE", "--tls-key-file", Kind::kString,
       [](Config* c, Value&& v) { c->tls_key_file = Take<std::string>(std::move(v)); }},
  };
  return kTable;
}

const Setting* FindByKey(std::string_view key) {
  for (const Setting& s : Table()) {
    if (s.key == key) return &s;
  }
  return nullptr;
}

std::string_view KindDescription(Kind kind) {
  switch (kind) {
    case Kind::kString:
      return "a string";
    case Kind::kPort:
      return "an integer port 0..65535";
    case Kind::kPositiveInt:
      return "a positive integer";
    case Kind::kCount:
      return "an integer >= 0";
    case Kind::kSize:
      return "a positive number of bytes";
    case Kind::kBool:
      return "a boolean (true/false)";
    case Kind::kList:
      return "a list of strings";
    case Kind::kLogLevel:
      return "one of debug, info, warn, error";
    case Kind::kLogFormat:
      return "one of json, text";
    case Kind::kUrl:
      return "a base URL http(s)://host[:port] without a path";
    case Kind::kDuration:
      return "a duration such as 24h, 90m, 1d12h or 3600 (seconds); 0 = never";
  }
  return "a value";
}

Status BadValue(std::string_view where, std::string_view text, Kind kind) {
  return Status::InvalidArgument(std::string(where) + ": invalid value '" + std::string(text) +
                                 "': expected " + std::string(KindDescription(kind)));
}

// Range checks shared by text and JSON sources.
Status CheckInteger(std::string_view where, int64_t n, std::string_view text, Kind kind) {
  if (kind == Kind::kPort && (n < 0 || n > 65535)) return BadValue(where, text, kind);
  if (kind == Kind::kCount && (n < 0 || n > std::numeric_limits<int>::max())) {
    return BadValue(where, text, kind);
  }
  if ((kind == Kind::kSize || kind == Kind::kPositiveInt) && n <= 0) {
    return BadValue(where, text, kind);
  }
  if (kind == Kind::kPositiveInt && n > std::numeric_limits<int>::max()) {
    return BadValue(where, text, kind);
  }
  return Status::OK();
}

// A duration with the grammar every duration in KnowledgeBeast has (repo::ParseDuration:
// "1d12h", "90m", "2w", "1y2mo"; units largest first, each at most once), or a bare number of
// seconds. Returns milliseconds; nullopt if malformed or beyond 100 years.
std::optional<int64_t> ParseDurationMillis(std::string_view text) {
  constexpr int64_t kMaxMillis = 100LL * 365 * 86'400'000;
  if (!text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos) {
    int64_t seconds = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds);
    if (ec != std::errc() || end != text.data() + text.size() || seconds > kMaxMillis / 1000) {
      return std::nullopt;
    }
    return seconds * 1000;
  }
  Result<int64_t> ms = repo::ParseDuration(text);
  if (!ms.ok() || *ms > kMaxMillis) return std::nullopt;
  return *ms;
}

Result<Value> FromText(std::string_view where, std::string_view raw, Kind kind) {
  std::string_view text = TrimWhitespace(raw);
  switch (kind) {
    case Kind::kString:
      return Value(std::string(raw));
    case Kind::kPort:
    case Kind::kPositiveInt:
    case Kind::kCount:
    case Kind::kSize: {
      int64_t n = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
      if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
        return BadValue(where, raw, kind);
      }
      KB_RETURN_IF_ERROR(CheckInteger(where, n, raw, kind));
      return Value(n);
    }
    case Kind::kBool: {
      std::string lower = ToLowerAscii(text);
      if (lower == "true" || lower == "1" || lower == "yes" || lower == "on") return Value(true);
      if (lower == "false" || lower == "0" || lower == "no" || lower == "off") return Value(false);
      return BadValue(where, raw, kind);
    }
    case Kind::kList: {
      std::vector<std::string> items;
      size_t start = 0;
      while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) comma = text.size();
        std::string_view item = TrimWhitespace(text.substr(start, comma - start));
        if (!item.empty()) items.emplace_back(item);
        start = comma + 1;
      }
      return Value(std::move(items));
    }
    case Kind::kLogLevel: {
      std::string lower = ToLowerAscii(text);
      LogLevel level;
      if (!ParseLogLevel(lower, &level)) return BadValue(where, raw, kind);
      return Value(lower);
    }
    case Kind::kLogFormat: {
      std::string lower = ToLowerAscii(text);
      if (lower != "json" && lower != "text") return BadValue(where, raw, kind);
      return Value(lower);
    }
    case Kind::kUrl: {
      // Empty means "not set" (direct mode). Trailing slashes are tolerated and dropped.
      std::string url(text);
      while (!url.empty() && url.back() == '/') url.pop_back();
      if (url.empty()) return Value(std::string());
      size_t scheme = url.find("://");
      std::string name = ToLowerAscii(url.substr(0, scheme == std::string::npos ? 0 : scheme));
      if (scheme == std::string::npos || (name != "http" && name != "https") ||
          url.size() == scheme + 3 || url.find('/', scheme + 3) != std::string::npos) {
        return BadValue(where, raw, kind);
      }
      return Value(url);
    }
    case Kind::kDuration: {
      std::optional<int64_t> ms = ParseDurationMillis(text);
      if (!ms) return BadValue(where, raw, kind);
      return Value(*ms);
    }
  }
  return Status::Internal("unhandled setting kind");
}

Result<Value> FromJson(std::string_view where, const Json& j, Kind kind) {
  auto wrong_type = [&] {
    return Status::InvalidArgument(std::string(where) + ": wrong type (" + j.type_name() +
                                   "): expected " + std::string(KindDescription(kind)));
  };
  switch (kind) {
    case Kind::kString:
    case Kind::kLogLevel:
    case Kind::kLogFormat:
    case Kind::kUrl:
      if (!j.is_string()) return wrong_type();
      return FromText(where, j.get<std::string>(), kind);
    case Kind::kPort:
    case Kind::kPositiveInt:
    case Kind::kCount:
    case Kind::kSize: {
      if (j.is_number_unsigned()) {
        uint64_t u = j.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
          return BadValue(where, j.dump(), kind);
        }
        int64_t n = static_cast<int64_t>(u);
        KB_RETURN_IF_ERROR(CheckInteger(where, n, j.dump(), kind));
        return Value(n);
      }
      if (j.is_number_integer()) {
        int64_t n = j.get<int64_t>();
        KB_RETURN_IF_ERROR(CheckInteger(where, n, j.dump(), kind));
        return Value(n);
      }
      return wrong_type();
    }
    case Kind::kBool:
      if (!j.is_boolean()) return wrong_type();
      return Value(j.get<bool>());
    case Kind::kDuration:
      // "24h", or a number of seconds.
      if (j.is_string()) return FromText(where, j.get<std::string>(), kind);
      if (j.is_number_unsigned() || j.is_number_integer()) return FromText(where, j.dump(), kind);
      return wrong_type();
    case Kind::kList: {
      if (!j.is_array()) return wrong_type();
      std::vector<std::string> items;
      for (const Json& item : j) {
        if (!item.is_string()) return wrong_type();
        items.push_back(item.get<std::string>());
      }
      return Value(std::move(items));
    }
  }
  return Status::Internal("unhandled setting kind");
}

}  // namespace

EnvLookup ProcessEnvironment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

Status ApplyConfigJson(std::string_view json_text, std::string_view origin, Config* config) {
  Json root = Json::parse(json_text, nullptr, /*allow_exceptions=*/false, /*ignore_comments=*/true);
  if (root.is_discarded()) {
    return Status::InvalidArgument(std::string(origin) + ": not valid JSON");
  }
  if (!root.is_object()) {
    return Status::InvalidArgument(std::string(origin) + ": must be a JSON object");
  }
  for (const auto& [key, value] : root.items()) {
    const Setting* s = FindByKey(key);
    if (s == nullptr) {
      return Status::InvalidArgument(std::string(origin) + ": unknown key '" + key + "'");
    }
    std::string where = std::string(origin) + ": key '" + key + "'";
    KB_ASSIGN_OR_RETURN(Value v, FromJson(where, value, s->kind));
    s->store(config, std::move(v));
  }
  return Status::OK();
}

Status ApplyEnvironment(const EnvLookup& env, Config* config) {
  for (const Setting& s : Table()) {
    std::optional<std::string> text = env(std::string(s.env));
    if (!text) continue;
    KB_ASSIGN_OR_RETURN(Value v, FromText(s.env, *text, s.kind));
    s.store(config, std::move(v));
  }
  return Status::OK();
}

Status ApplyFlags(const FlagValues& flags, Config* config) {
  const std::pair<std::string_view, const std::optional<std::string>*> given[] = {
      {"data_dir", &flags.data_dir},
      {"host", &flags.host},
      {"port", &flags.port},
      {"admin_token", &flags.admin_token},
      {"log_level", &flags.log_level},
      {"log_format", &flags.log_format},
      {"max_body_bytes", &flags.max_body_bytes},
      {"cors_origins", &flags.cors_origins},
      {"ingest_root", &flags.ingest_root},
      {"mcp_import_roots", &flags.mcp_import_roots},
      {"url", &flags.url},
      {"api_key", &flags.api_key},
      {"integrity_check_interval", &flags.integrity_check_interval},
      {"deletion_grace_period", &flags.deletion_grace_period},
      {"backup_repository", &flags.backup_repository},
      {"backup_key_file", &flags.backup_key_file},
      {"backup_copy_to", &flags.backup_copy_to},
      {"ship_interval", &flags.ship_interval},
      {"rate_limit_per_second", &flags.rate_limit_per_second},
      {"rate_limit_burst", &flags.rate_limit_burst},
      {"tls_cert_file", &flags.tls_cert_file},
      {"tls_key_file", &flags.tls_key_file},
      {"threads", &flags.threads},
      {"max_connections", &flags.max_connections},
      {"max_connections_per_address", &flags.max_connections_per_address},
      {"http_idle_timeout", &flags.http_idle_timeout},
      {"http_header_timeout", &flags.http_header_timeout},
      {"http_body_timeout", &flags.http_body_timeout},
      {"restore_if_empty", &flags.restore_if_empty},
  };
  for (const auto& [key, value] : given) {
    if (!value->has_value()) continue;
    const Setting* s = FindByKey(key);
    if (s == nullptr) return Status::Internal("flag without a setting: " + std::string(key));
    KB_ASSIGN_OR_RETURN(Value v, FromText(s->flag, **value, s->kind));
    s->store(config, std::move(v));
  }
  return Status::OK();
}

Result<Config> LoadConfig(const FlagValues& flags, const EnvLookup& env) {
  Config config;
  std::string path = flags.config_file;
  if (path.empty()) path = env("KB_CONFIG").value_or("");
  if (!path.empty()) {
    Result<std::string> text = ReadFile(path);
    if (!text.ok()) {
      return Status::InvalidArgument("cannot read config file " + path + ": " +
                                     text.status().message());
    }
    KB_RETURN_IF_ERROR(ApplyConfigJson(*text, path, &config));
    config.config_file = path;
  }
  KB_RETURN_IF_ERROR(ApplyEnvironment(env, &config));
  KB_RETURN_IF_ERROR(ApplyFlags(flags, &config));
  return config;
}

const std::vector<SettingInfo>& AllSettings() {
  static const std::vector<SettingInfo> kInfo = [] {
    std::vector<SettingInfo> out;
    for (const Setting& s : Table()) out.push_back({s.key, s.env, s.flag});
    return out;
  }();
  return kInfo;
}

}  // namespace kb::cli
