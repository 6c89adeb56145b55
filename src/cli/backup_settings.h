// The backup-related part of the configuration turned into the backup module's types: the
// repository URL and key, the S3 settings, the schedule and the retention policy.
//
// Thread-safety: pure functions (KeyFromConfig reads the process environment).
#pragma once

#include <string>
#include <string_view>

#include "backup/service.h"
#include "blob/blob_store.h"
#include "cli/config.h"
#include "repo/repository.h"

namespace kb::cli {

// "hourly=168,daily=30,weekly=8,monthly=12,last=3,within=7d" (any subset, comma-separated).
// "" is the default policy (hourly for 7 days, daily for 30 days). InvalidArgument otherwise.
Result<repo::RetentionPolicy> ParseRetentionPolicy(std::string_view text);

// S3 settings from the config, then the AWS_* environment for what the config leaves empty.
blob::BlobStoreOptions BlobOptionsFromConfig(const Config& config);

// backup_key_file from the config, else KB_BACKUP_KEY_FILE / KB_BACKUP_PASSWORD.
repo::KeySource KeyFromConfig(const Config& config);

// The key of a copy destination (`repo copy`): `key_file` when given, else
// KB_BACKUP_TO_KEY_FILE, else KB_BACKUP_TO_PASSWORD.
repo::KeySource DestinationKey(const std::string& key_file);

// backup_copy_to: each entry "URL key_file=PATH" (every destination has its own key file).
// InvalidArgument naming the setting for a missing key file, an unknown part, a URL that is
// not file:// or s3://, or the primary repository itself.
Result<std::vector<backup::CopyTarget>> CopyTargetsFromConfig(const Config& config);

// Everything `serve` needs to start the BackupService.
Result<backup::BackupServiceOptions> BackupServiceOptionsFromConfig(const Config& config);

// ship_interval: "0" (off), "<n>ms", or a duration ("1s", "2m"). InvalidArgument naming the
// setting otherwise.
Result<int64_t> ParseShipInterval(const std::string& text);

// backup_index_max_lag: "N%" (0..100) or a fraction 0..1. InvalidArgument naming the setting
// otherwise.
Result<double> ParseIndexMaxLag(const std::string& text);

}  // namespace kb::cli
