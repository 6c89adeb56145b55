// Configuration layering and validation: defaults < file < KB_* environment < flags, and every
// malformed value is an error that names the setting.
#include "cli/config.h"

#include <gtest/gtest.h>

#include "cli/backup_settings.h"

#include <map>

#include "test_util.h"

namespace kb::cli {
namespace {

using kb::testing::TempDir;
using kb::testing::WriteTestFile;

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ConfigTest, DefaultsWhenNothingIsSet) {
  Result<Config> c = LoadConfig({}, FakeEnv({}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "./data");
  EXPECT_EQ(c->host, "127.0.0.1");
  EXPECT_EQ(c->port, 8080);
  EXPECT_FALSE(c->max_body_bytes.has_value());
  EXPECT_FALSE(c->metrics_require_auth);
  EXPECT_TRUE(c->url.empty());
}

TEST(ConfigTest, FileThenEnvironmentThenFlagsEachOverrideTheLayerBelow) {
  TempDir dir;
  WriteTestFile(dir.Sub("kb.json"),
                R"({"data_dir": "/from/file", "host": "0.0.0.0", "port": 9000,
                    "cors_origins": ["https://a.example"], "metrics_require_auth": true})");
  FlagValues flags;
  flags.config_file = dir.Sub("kb.json");
  flags.port = "9002";
  Result<Config> c = LoadConfig(flags, FakeEnv({{"KB_HOST", "10.0.0.1"}, {"KB_PORT", "9001"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/from/file");  // only the file sets it
  EXPECT_EQ(c->host, "10.0.0.1");        // environment beats file
  EXPECT_EQ(c->port, 9002);              // flag beats environment
  EXPECT_EQ(c->cors_origins, std::vector<std::string>{"https://a.example"});
  EXPECT_TRUE(c->metrics_require_auth);
  EXPECT_EQ(c->config_file, dir.Sub("kb.json"));
}

TEST(ConfigTest, ConfigFileCanBeNamedByKbConfig) {
  TempDir dir;
  WriteTestFile(dir.Sub("kb.json"), R"({"data_dir": "/via/env"})");
  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_CONFIG", dir.Sub("kb.json")}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->data_dir, "/via/env");
}

TEST(ConfigTest, UnknownFileKeyIsAnErrorNamingTheKey) {
  Config c;
  Status s = ApplyConfigJson(R"({"prot": 8080})", "kb.json", &c);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("unknown key 'prot'"), std::string::npos) << s.message();
}

TEST(ConfigTest, WrongJsonTypeIsAnErrorNamingTheKey) {
  Config c;
  Status s = ApplyConfigJson(R"({"port": "8080"})", "kb.json", &c);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("'port'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("wrong type"), std::string::npos) << s.message();

  s = ApplyConfigJson(R"({"cors_origins": "https://a.example"})", "kb.json", &c);
  EXPECT_NE(s.message().find("'cors_origins'"), std::string::npos) << s.message();
  s = ApplyConfigJson(R"({"metrics_require_auth": 1})", "kb.json", &c);
  EXPECT_NE(s.message().find("'metrics_require_auth'"), std::string::npos) << s.message();
}

TEST(ConfigTest, MalformedFileIsAnError) {
  Config c;
  EXPECT_EQ(ApplyConfigJson("{", "kb.json", &c).code(), Code::kInvalidArgument);
  EXPECT_EQ(ApplyConfigJson("[1]", "kb.json", &c).code(), Code::kInvalidArgument);
}

TEST(ConfigTest, MissingConfigFileIsAnError) {
  FlagValues flags;
  flags.config_file = "/nonexistent/kb.json";
  Result<Config> c = LoadConfig(flags, FakeEnv({}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("/nonexistent/kb.json"), std::string::npos);
}

TEST(ConfigTest, PortMustBeAnIntegerFrom0To65535) {
  for (const char* bad : {"abc", "-1", "65536", "80x", ""}) {
    Result<Config> c = LoadConfig({}, FakeEnv({{"KB_PORT", bad}}));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("KB_PORT"), std::string::npos) << c.status().message();
  }
  FlagValues flags;
  flags.port = "99999";
  Result<Config> c = LoadConfig(flags, FakeEnv({}));
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("--port"), std::string::npos) << c.status().message();
  for (const char* good : {"0", "65535", " 8081 "}) {
    EXPECT_TRUE(LoadConfig({}, FakeEnv({{"KB_PORT", good}})).ok()) << good;
  }
  Config cfg;
  EXPECT_FALSE(ApplyConfigJson(R"({"port": 70000})", "f", &cfg).ok());
  EXPECT_FALSE(ApplyConfigJson(R"({"port": -5})", "f", &cfg).ok());
}

TEST(ConfigTest, SizesMustBePositive) {
  EXPECT_FALSE(LoadConfig({}, FakeEnv({{"KB_MAX_BODY_BYTES", "-1"}})).ok());
  EXPECT_FALSE(LoadConfig({}, FakeEnv({{"KB_MAX_BODY_BYTES", "0"}})).ok());
  Config cfg;
  EXPECT_FALSE(ApplyConfigJson(R"({"max_body_bytes": -10})", "f", &cfg).ok());
  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_MAX_BODY_BYTES", "1048576"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->max_body_bytes, 1048576);
}

TEST(ConfigTest, CorsOriginsFromEnvironmentAreCommaSeparated) {
  Result<Config> c =
      LoadConfig({}, FakeEnv({{"KB_CORS_ORIGINS", "https://a.example, https://b.example,"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->cors_origins, (std::vector<std::string>{"https://a.example", "https://b.example"}));
}

TEST(ConfigTest, BooleansAcceptCommonSpellingsAndRejectOthers) {
  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_METRICS_REQUIRE_AUTH", "yes"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->metrics_require_auth);
  c = LoadConfig({}, FakeEnv({{"KB_METRICS_REQUIRE_AUTH", "0"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c->metrics_require_auth);
  EXPECT_FALSE(LoadConfig({}, FakeEnv({{"KB_METRICS_REQUIRE_AUTH", "maybe"}})).ok());
}

TEST(ConfigTest, LogSettingsAreValidated) {
  EXPECT_FALSE(LoadConfig({}, FakeEnv({{"KB_LOG_LEVEL", "loud"}})).ok());
  EXPECT_FALSE(LoadConfig({}, FakeEnv({{"KB_LOG_FORMAT", "xml"}})).ok());
  Result<Config> c =
      LoadConfig({}, FakeEnv({{"KB_LOG_LEVEL", "DEBUG"}, {"KB_LOG_FORMAT", "text"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->log_level, "debug");
  EXPECT_EQ(c->log_format, "text");
}

TEST(ConfigTest, ClientSettingsComeFromEnvironment) {
  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_URL", "http://127.0.0.1:9"},
                                             {"KB_API_KEY", "kb_secret"},
                                             {"KB_DATA_DIR", "/srv/kb"},
                                             {"KB_ADMIN_TOKEN", "tok"},
                                             {"KB_INGEST_ROOT", "/srv/in"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->url, "http://127.0.0.1:9");
  EXPECT_EQ(c->api_key, "kb_secret");
  EXPECT_EQ(c->data_dir, "/srv/kb");
  EXPECT_EQ(c->admin_token, "tok");
  EXPECT_EQ(c->ingest_root, "/srv/in");
}

TEST(ConfigTest, ServerUrlMustBeAnHttpBaseUrl) {
  for (const char* bad : {"localhost:8080", "ftp://host", "http://", "http://host/api/v1"}) {
    Result<Config> c = LoadConfig({}, FakeEnv({{"KB_URL", bad}}));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("KB_URL"), std::string::npos) << c.status().message();
  }
  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_URL", "https://kb.example:8443/"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->url, "https://kb.example:8443");
}

TEST(ConfigTest, IntegrityCheckIntervalIsADuration) {
  Result<Config> unset = LoadConfig({}, FakeEnv({}));
  ASSERT_TRUE(unset.ok());
  EXPECT_FALSE(unset->integrity_check_interval_ms.has_value());  // serve: 24h
  for (const auto& [text, ms] : std::vector<std::pair<std::string, int64_t>>{
           {"24h", 86'400'000}, {"90m", 5'400'000}, {"1d12h", 129'600'000}, {"30s", 30'000},
           {"3600", 3'600'000}, {"0", 0}, {" 2h ", 7'200'000}, {"2w", 1'209'600'000},
           {"1y", 31'536'000'000}, {"1mo", 2'592'000'000}}) {
    Result<Config> c = LoadConfig({}, FakeEnv({{"KB_INTEGRITY_CHECK_INTERVAL", text}}));
    ASSERT_TRUE(c.ok()) << text << ": " << c.status().ToString();
    EXPECT_EQ(c->integrity_check_interval_ms, ms) << text;
  }
  for (const char* bad : {"", "h", "1h30", "30m1h", "1x", "-5", "1.5h", "1h1h", "999999999999d",
                          "9999999999999", "101y", "1y2m"}) {
    Result<Config> c = LoadConfig({}, FakeEnv({{"KB_INTEGRITY_CHECK_INTERVAL", bad}}));
    ASSERT_FALSE(c.ok()) << bad;
    EXPECT_NE(c.status().message().find("KB_INTEGRITY_CHECK_INTERVAL"), std::string::npos);
    EXPECT_NE(c.status().message().find("expected a duration"), std::string::npos)
        << c.status().message();
  }
  TempDir dir;
  WriteTestFile(dir.Sub("kb.json"), R"({"integrity_check_interval": 600})");
  FlagValues flags;
  flags.config_file = dir.Sub("kb.json");
  EXPECT_EQ(LoadConfig(flags, FakeEnv({}))->integrity_check_interval_ms, 600'000);
  WriteTestFile(dir.Sub("kb.json"), R"({"integrity_check_interval": "12h"})");
  EXPECT_EQ(LoadConfig(flags, FakeEnv({}))->integrity_check_interval_ms, 43'200'000);
  flags.integrity_check_interval = "0";
  EXPECT_EQ(LoadConfig(flags, FakeEnv({}))->integrity_check_interval_ms, 0);
  WriteTestFile(dir.Sub("kb.json"), R"({"integrity_check_interval": true})");
  flags.integrity_check_interval.reset();
  EXPECT_FALSE(LoadConfig(flags, FakeEnv({})).ok());
}

TEST(ConfigTest, RateLimitsAndTlsFromEveryLayer) {
  TempDir dir;
  WriteTestFile(dir.Sub("kb.json"),
                R"({"rate_limit_per_second": 0, "rate_limit_burst": 5, "tls_cert_file": "c.pem"})");
  FlagValues flags;
  flags.config_file = dir.Sub("kb.json");
  Result<Config> c = LoadConfig(flags, FakeEnv({{"KB_TLS_KEY_FILE", "k.pem"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ(c->rate_limit_per_second, 0) << "0 = rate limiting off";
  EXPECT_EQ(c->rate_limit_burst, 5);
  EXPECT_EQ(c->tls_cert_file, "c.pem");
  EXPECT_EQ(c->tls_key_file, "k.pem");
  flags.rate_limit_per_second = "25";
  flags.tls_cert_file = "other.pem";
  c = LoadConfig(flags, FakeEnv({}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->rate_limit_per_second, 25);
  EXPECT_EQ(c->tls_cert_file, "other.pem");

  Config defaults;
  EXPECT_FALSE(defaults.rate_limit_per_second.has_value()) << "unset = the API layer's default";
  flags = FlagValues();
  flags.rate_limit_per_second = "-1";
  Result<Config> negative = LoadConfig(flags, FakeEnv({}));
  ASSERT_FALSE(negative.ok());
  EXPECT_NE(negative.status().message().find("--rate-limit-per-second"), std::string::npos);
  flags = FlagValues();
  EXPECT_FALSE(LoadConfig(flags, FakeEnv({{"KB_RATE_LIMIT_BURST", "0"}})).ok());
  EXPECT_FALSE(LoadConfig(flags, FakeEnv({{"KB_RATE_LIMIT_PER_SECOND", "fast"}})).ok());
  WriteTestFile(dir.Sub("bad.json"), R"({"rate_limit_per_second": "100"})");
  flags.config_file = dir.Sub("bad.json");
  EXPECT_FALSE(LoadConfig(flags, FakeEnv({})).ok()) << "wrong JSON type";
}

TEST(ConfigTest, BackupCopyToEntriesNameAKeyFileAndMayHaveTheirOwnRetention) {
  Result<Config> c = LoadConfig(
      {},
      FakeEnv(
          {{"KB_BACKUP_COPY_TO",
            "file:///dr/a key_file=/k/a, s3://dr/b key_file=/k/b retention=daily=90+monthly=24"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  auto targets = CopyTargetsFromConfig(*c);
  ASSERT_TRUE(targets.ok()) << targets.status().ToString();
  ASSERT_EQ(targets->size(), 2u);
  EXPECT_EQ((*targets)[0].url, "file:///dr/a");
  EXPECT_EQ((*targets)[0].key.key_file, "/k/a");
  EXPECT_FALSE((*targets)[0].retention.has_value());
  EXPECT_EQ((*targets)[1].url, "s3://dr/b");
  ASSERT_TRUE((*targets)[1].retention.has_value());
  EXPECT_EQ((*targets)[1].retention->keep_daily, 90);
  EXPECT_EQ((*targets)[1].retention->keep_monthly, 24);
  EXPECT_EQ((*targets)[1].retention->keep_hourly, 0);

  for (const char* bad : {"file:///dr/a", "file:///dr/a key_file=/k retention=daily",
                          "file:///dr/a key_file=/k colour=blue", "ftp://x key_file=/k",
                          "file:///dr/a key_file=/k retention="}) {
    Result<Config> b = LoadConfig({}, FakeEnv({{"KB_BACKUP_COPY_TO", bad}}));
    ASSERT_TRUE(b.ok()) << bad;
    auto refused = CopyTargetsFromConfig(*b);
    ASSERT_FALSE(refused.ok()) << bad;
    EXPECT_EQ(refused.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(refused.status().message().find("backup_copy_to"), std::string::npos) << bad;
  }
}

TEST(ConfigTest, BackupSourceCheckIsFullChecksumOrOff) {
  Result<Config> defaults = LoadConfig({}, FakeEnv({}));
  ASSERT_TRUE(defaults.ok());
  auto options = BackupServiceOptionsFromConfig(*defaults);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->source_check, backup::SourceCheckLevel::kFull);
  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_BACKUP_SOURCE_CHECK", "checksum"}}));
  ASSERT_TRUE(c.ok());
  options = BackupServiceOptionsFromConfig(*c);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->source_check, backup::SourceCheckLevel::kChecksum);
  Result<Config> wrong = LoadConfig({}, FakeEnv({{"KB_BACKUP_SOURCE_CHECK", "quick"}}));
  ASSERT_TRUE(wrong.ok());
  auto refused = BackupServiceOptionsFromConfig(*wrong);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("backup_source_check"), std::string::npos);
}

TEST(ConfigTest, BackupIndexMaxLagIsAPercentageOrAFraction) {
  Result<Config> defaults = LoadConfig({}, FakeEnv({}));
  ASSERT_TRUE(defaults.ok());
  auto options = BackupServiceOptionsFromConfig(*defaults);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_DOUBLE_EQ(options->index_max_lag, 0.02);

  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_BACKUP_INDEX_MAX_LAG", "5%"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  options = BackupServiceOptionsFromConfig(*c);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_DOUBLE_EQ(options->index_max_lag, 0.05);

  const std::map<std::string, double> good = {{"0", 0.0},    {"0%", 0.0},   {"0.1", 0.1},
                                              {"1", 1.0},    {"100%", 1.0}, {"2.5%", 0.025}};
  for (const auto& [text, value] : good) {
    auto parsed = ParseIndexMaxLag(text);
    ASSERT_TRUE(parsed.ok()) << text << ": " << parsed.status().ToString();
    EXPECT_DOUBLE_EQ(*parsed, value) << text;
  }
  for (const char* bad : {"", "%", "-1%", "2 %", "1.5", "101%", "abc", "1e-3", "0.5.1", "5%%"}) {
    auto parsed = ParseIndexMaxLag(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("backup_index_max_lag"), std::string::npos);
  }
  Result<Config> wrong = LoadConfig({}, FakeEnv({{"KB_BACKUP_INDEX_MAX_LAG", "lots"}}));
  ASSERT_TRUE(wrong.ok());  // a string setting: checked where it is used
  EXPECT_FALSE(BackupServiceOptionsFromConfig(*wrong).ok());
}

TEST(ConfigTest, BackupAndVerifyIntervals) {
  Result<Config> defaults = LoadConfig({}, FakeEnv({}));
  ASSERT_TRUE(defaults.ok());
  auto options = BackupServiceOptionsFromConfig(*defaults);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->interval_ms, 3'600'000);
  EXPECT_EQ(options->verify_interval_ms, 86'400'000);
  EXPECT_EQ(options->verify_full_cycle_ms, 28 * 86'400'000LL);

  Result<Config> c = LoadConfig({}, FakeEnv({{"KB_BACKUP_INTERVAL", "0"},
                                             {"KB_VERIFY_INTERVAL", "12h"},
                                             {"KB_VERIFY_FULL_CYCLE", "7d"}}));
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  options = BackupServiceOptionsFromConfig(*c);
  ASSERT_TRUE(options.ok()) << options.status().ToString();
  EXPECT_EQ(options->interval_ms, 0);
  EXPECT_EQ(options->verify_interval_ms, 12 * 3'600'000LL);
  EXPECT_EQ(options->verify_full_cycle_ms, 7 * 86'400'000LL);

  // Each bad value is refused naming its setting; a cycle shorter than the interval too.
  const std::pair<const char*, const char*> bad[] = {{"KB_BACKUP_INTERVAL", "often"},
                                                     {"KB_VERIFY_INTERVAL", "-1d"},
                                                     {"KB_VERIFY_FULL_CYCLE", "0"}};
  for (const auto& [env, value] : bad) {
    Result<Config> wrong = LoadConfig({}, FakeEnv({{env, value}}));
    ASSERT_TRUE(wrong.ok());
    auto refused = BackupServiceOptionsFromConfig(*wrong);
    EXPECT_FALSE(refused.ok()) << env << "=" << value;
  }
  Result<Config> restore = LoadConfig({}, FakeEnv({{"KB_RESTORE_IF_EMPTY", "true"}}));
  ASSERT_TRUE(restore.ok());
  EXPECT_TRUE(restore->restore_if_empty);
  EXPECT_FALSE(defaults->restore_if_empty);
}

TEST(ConfigTest, EveryFileKeyHasAnEnvironmentVariable) {
  for (const SettingInfo& s : AllSettings()) {
    EXPECT_FALSE(s.key.empty());
    EXPECT_EQ(s.env.substr(0, 3), "KB_") << s.key;
  }
}

}  // namespace
}  // namespace kb::cli

namespace kb::cli {
namespace {

TEST(ConfigTest, ShipIntervalDefaultsTo250msAndParsesMillisecondsAndDurations) {
  Result<Config> defaults = LoadConfig({}, FakeEnv({}));
  ASSERT_TRUE(defaults.ok());
  auto d = ParseShipInterval(defaults->ship_interval);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, 250);
  Result<Config> env = LoadConfig({}, FakeEnv({{"KB_SHIP_INTERVAL", "1s"}}));
  ASSERT_TRUE(env.ok());
  EXPECT_EQ(*ParseShipInterval(env->ship_interval), 1000);
  EXPECT_EQ(*ParseShipInterval("0"), 0);
  EXPECT_EQ(*ParseShipInterval("100ms"), 100);
  EXPECT_EQ(*ParseShipInterval("2m"), 120'000);
  for (const char* bad : {"", "ms", "-5ms", "250", "1.5s", "fast", "5 ms"}) {
    auto parsed = ParseShipInterval(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
    EXPECT_NE(parsed.status().message().find("ship_interval"), std::string::npos) << bad;
  }
}

}  // namespace
}  // namespace kb::cli
