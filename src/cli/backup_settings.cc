#include "cli/backup_settings.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>

#include "common/text_util.h"
#include "repo/retention.h"

namespace kb::cli {

namespace {

Status BadPolicy(std::string_view text, std::string_view why) {
  return Status::InvalidArgument("backup_retention '" + std::string(text) +
                                 "': " + std::string(why) +
                                 " (expected e.g. hourly=168,daily=30,weekly=8,monthly=12,"
                                 "last=3,within=7d)");
}

}  // namespace

Result<repo::RetentionPolicy> ParseRetentionPolicy(std::string_view text) {
  if (TrimWhitespace(text).empty()) return repo::RetentionPolicy::Default();
  repo::RetentionPolicy policy;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = TrimWhitespace(text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return BadPolicy(text, "'" + std::string(item) + "' has no '='");
    std::string_view name = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    if (name == "within") {
      KB_ASSIGN_OR_RETURN(policy.keep_within_ms, repo::ParseDuration(value));
    } else {
      int n = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (value.empty() || ec != std::errc() || end != value.data() + value.size() || n < 0) {
        return BadPolicy(text, "'" + std::string(value) + "' is not a count");
      }
      if (name == "last")
        policy.keep_last = n;
      else if (name == "hourly")
        policy.keep_hourly = n;
      else if (name == "daily")
        policy.keep_daily = n;
      else if (name == "weekly")
        policy.keep_weekly = n;
      else if (name == "monthly")
        policy.keep_monthly = n;
      else
        return BadPolicy(text, "unknown rule '" + std::string(name) + "'");
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (policy.empty()) return BadPolicy(text, "it keeps nothing");
  return policy;
}

blob::BlobStoreOptions BlobOptionsFromConfig(const Config& config) {
  blob::S3Options s3;
  s3.endpoint = config.backup_s3_endpoint;
  s3.region = config.backup_s3_region;
  blob::BlobStoreOptions options;
  options.s3 = blob::S3OptionsFromEnvironment(s3);
  if (config.backup_s3_path_style) options.s3.path_style = *config.backup_s3_path_style;
  return options;
}

repo::KeySource KeyFromConfig(const Config& config) {
  repo::KeySource overrides;
  if (!config.backup_key_file.empty()) overrides.key_file = config.backup_key_file;
  return repo::KeySource::FromEnvironment(overrides);
}

repo::KeySource DestinationKey(const std::string& key_file) {
  repo::KeySource key;
  if (!key_file.empty()) {
    key.key_file = key_file;
  } else if (const char* f = std::getenv("KB_BACKUP_TO_KEY_FILE"); f != nullptr && *f != '\0') {
    key.key_file = f;
  } else if (const char* p = std::getenv("KB_BACKUP_TO_PASSWORD"); p != nullptr && *p != '\0') {
    key.passphrase = p;
  }
  return key;
}

Result<std::vector<backup::CopyTarget>> CopyTargetsFromConfig(const Config& config) {
  std::vector<backup::CopyTarget> targets;
  for (const std::string& entry : config.backup_copy_to) {
    auto bad = [&](const std::string& why) {
      return Status::InvalidArgument("backup_copy_to entry \"" + entry + "\": " + why +
                                     " (expected \"URL key_file=PATH [retention=POLICY]\")");
    };
    std::vector<std::string> parts;
    for (std::string_view rest = TrimWhitespace(entry); !rest.empty();) {
      const size_t space = rest.find_first_of(" \t");
      parts.emplace_back(rest.substr(0, space));
      rest =
          space == std::string_view::npos ? std::string_view{} : TrimWhitespace(rest.substr(space));
    }
    if (parts.empty()) return bad("empty");
    backup::CopyTarget t;
    t.url = parts[0];
    if (t.url.rfind("file://", 0) != 0 && t.url.rfind("s3://", 0) != 0) {
      return bad("the URL must start with file:// or s3://");
    }
    for (size_t i = 1; i < parts.size(); ++i) {
      constexpr std::string_view kKeyFile = "key_file=";
      constexpr std::string_view kRetention = "retention=";
      if (parts[i].rfind(kKeyFile, 0) == 0 && parts[i].size() > kKeyFile.size()) {
        t.key.key_file = parts[i].substr(kKeyFile.size());
      } else if (parts[i].rfind(kRetention, 0) == 0 && parts[i].size() > kRetention.size()) {
        // backup_retention's grammar with '+' between items, since KB_BACKUP_COPY_TO separates
        // entries with commas: retention=daily=90+monthly=24.
        std::string policy = parts[i].substr(kRetention.size());
        std::replace(policy.begin(), policy.end(), '+', ',');
        auto parsed = ParseRetentionPolicy(policy);
        if (!parsed.ok()) return bad(parsed.status().message());
        t.retention = std::move(parsed).value();
      } else {
        return bad("unknown part \"" + parts[i] + "\"");
      }
    }
    if (!t.key.key_file) return bad("every destination needs its own key_file");
    if (t.url == config.backup_repository) return bad("it is the primary backup_repository");
    for (const backup::CopyTarget& other : targets) {
      if (other.url == t.url) return bad("listed twice");
    }
    targets.push_back(std::move(t));
  }
  return targets;
}

Result<backup::BackupServiceOptions> BackupServiceOptionsFromConfig(const Config& config) {
  backup::BackupServiceOptions options;
  options.repository_url = config.backup_repository;
  options.key = KeyFromConfig(config);
  options.blob = BlobOptionsFromConfig(config);
  // A duration, or "0" for none; errors name the setting.
  auto interval = [](const std::string& text, std::string_view setting) -> Result<int64_t> {
    if (text == "0") return int64_t{0};
    auto ms = repo::ParseDuration(text);
    if (!ms.ok()) return ms.status().WithContext(std::string(setting));
    return *ms;
  };
  KB_ASSIGN_OR_RETURN(options.interval_ms, interval(config.backup_interval, "backup_interval"));
  KB_ASSIGN_OR_RETURN(options.verify_interval_ms,
                      interval(config.verify_interval, "verify_interval"));
  KB_ASSIGN_OR_RETURN(options.verify_full_cycle_ms,
                      interval(config.verify_full_cycle, "verify_full_cycle"));
  if (options.verify_interval_ms > 0 && options.verify_full_cycle_ms < options.verify_interval_ms) {
    return Status::InvalidArgument("verify_full_cycle must be at least verify_interval");
  }
  KB_ASSIGN_OR_RETURN(options.retention, ParseRetentionPolicy(config.backup_retention));
  KB_ASSIGN_OR_RETURN(options.index_max_lag, ParseIndexMaxLag(config.backup_index_max_lag));
  KB_ASSIGN_OR_RETURN(options.source_check,
                      backup::ParseSourceCheckLevel(config.backup_source_check));
  KB_ASSIGN_OR_RETURN(options.copy_to, CopyTargetsFromConfig(config));
  return options;
}

Result<int64_t> ParseShipInterval(const std::string& text) {
  if (text == "0") return int64_t{0};
  if (text.size() > 2 && text.compare(text.size() - 2, 2, "ms") == 0 &&
      text.find_first_not_of("0123456789") == text.size() - 2 && text.size() <= 2 + 9) {
    return static_cast<int64_t>(std::stoll(text.substr(0, text.size() - 2)));
  }
  auto ms = repo::ParseDuration(text);
  if (!ms.ok()) {
    return Status::InvalidArgument(
        "ship_interval: expected \"0\" (off), milliseconds (\"250ms\") "
        "or a duration (\"1s\"), got \"" +
        text + "\"");
  }
  return *ms;
}

Result<double> ParseIndexMaxLag(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument(
        "backup_index_max_lag: expected a percentage (\"2%\") or a "
        "fraction from 0 to 1, got \"" +
        text + "\"");
  };
  std::string number = text;
  double scale = 1.0;
  if (!number.empty() && number.back() == '%') {
    number.pop_back();
    scale = 0.01;
  }
  if (number.empty() || number.find_first_not_of("0123456789.") != std::string::npos) return bad();
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(number, &used) * scale;
  } catch (const std::exception&) {
    return bad();
  }
  if (used != number.size() || !(value >= 0.0) || value > 1.0) return bad();
  return value;
}

}  // namespace kb::cli
