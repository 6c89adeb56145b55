// Address rules, service modes, token buckets and their persistence (see access_control.h).
#include "api/access_control.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "common/logging.h"
#include "common/text_util.h"

namespace kb::api {

using nlohmann::json;

namespace {

constexpr std::array<uint8_t, 12> kV4MappedPrefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// What an error message may quote of a caller's string: bounded and valid UTF-8.
std::string Quote(std::string_view s) {
  constexpr size_t kMaxQuoted = 80;
  std::string out = SanitizeUtf8(s.substr(0, kMaxQuoted));
  if (s.size() > kMaxQuoted) out += "...";
  return "'" + out + "'";
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool BitSet(const std::array<uint8_t, 16>& b, int bit) {
  return (b[static_cast<size_t>(bit / 8)] >> (7 - bit % 8)) & 1;
}

std::string SinceText(int64_t ms) { return ms > 0 ? " since " + FormatIso8601(ms) : ""; }

}  // namespace

// --- addresses --------------------------------------------------------------------------------

bool IpAddress::IsV4() const {
  return std::equal(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), bytes.begin());
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (IsV4()) {
    inet_ntop(AF_INET, bytes.data() + 12, buf, sizeof buf);
  } else {
    inet_ntop(AF_INET6, bytes.data(), buf, sizeof buf);
  }
  return buf;
}

std::optional<IpAddress> ParseIpAddress(std::string_view text) {
  if (text.empty() || text.size() > kMaxAddressRuleLength) return std::nullopt;
  bool colon = false;
  for (char c : text) {
    const bool ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
                    c == ':' || c == '.';
    if (!ok) return std::nullopt;  // also refuses NULs, spaces, '%zone', brackets, ports
    colon = colon || c == ':';
  }
  const std::string z(text);  // NUL-terminated for inet_pton
  IpAddress out;
  if (colon) {
    if (inet_pton(AF_INET6, z.c_str(), out.bytes.data()) != 1) return std::nullopt;
  } else {
    std::copy(kV4MappedPrefix.begin(), kV4MappedPrefix.end(), out.bytes.begin());
    if (inet_pton(AF_INET, z.c_str(), out.bytes.data() + 12) != 1) return std::nullopt;
  }
  return out;
}

Result<Cidr> Cidr::Parse(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument(Quote(text) + " is not an IPv4/IPv6 address or CIDR range" +
                                   (why.empty() ? "" : ": " + why));
  };
  if (text.empty() || text.size() > kMaxAddressRuleLength) {
    return bad("expected 1 to " + std::to_string(kMaxAddressRuleLength) + " characters");
  }
  const size_t slash = text.find('/');
  const std::string_view addr_text = text.substr(0, slash);
  std::optional<IpAddress> addr = ParseIpAddress(addr_text);
  if (!addr) return bad("");
  const bool written_v4 = addr_text.find(':') == std::string_view::npos;
  const int max_prefix = written_v4 ? 32 : 128;
  int prefix = max_prefix;
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    if (p.empty() || p.size() > 3)
      return bad("the prefix length must be 0 to " + std::to_string(max_prefix));
    prefix = 0;
    for (char c : p) {
      if (c < '0' || c > '9')
        return bad("the prefix length must be 0 to " + std::to_string(max_prefix));
      prefix = prefix * 10 + (c - '0');
    }
    if (prefix > max_prefix)
      return bad("the prefix length must be 0 to " + std::to_string(max_prefix));
  }
  Cidr out;
  out.network_ = *addr;
  out.prefix_ = written_v4 ? 96 + prefix : prefix;
  for (int bit = out.prefix_; bit < 128; ++bit) {
    if (BitSet(addr->bytes, bit)) {
      // Name the network the operator probably meant rather than silently widening the rule.
      IpAddress network = *addr;
      for (int b = out.prefix_; b < 128; ++b) {
        network.bytes[static_cast<size_t>(b / 8)] &= static_cast<uint8_t>(~(1u << (7 - b % 8)));
      }
      return bad("host bits are set (did you mean " + network.ToString() + "/" +
                 std::to_string(prefix) + "?)");
    }
  }
  return out;
}

bool Cidr::Contains(const IpAddress& address) const {
  const int whole = prefix_ / 8;
  if (!std::equal(network_.bytes.begin(), network_.bytes.begin() + whole, address.bytes.begin())) {
    return false;
  }
  const int rest = prefix_ % 8;
  if (rest == 0) return true;
  const uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (network_.bytes[static_cast<size_t>(whole)] & mask) ==
         (address.bytes[static_cast<size_t>(whole)] & mask);
}

std::string Cidr::ToString() const {
  if (network_.IsV4() && prefix_ >= 96) {
    return network_.ToString() + "/" + std::to_string(prefix_ - 96);
  }
  return network_.ToString() + "/" + std::to_string(prefix_);
}

Status AddressRules::Check(std::string_view remote_address) const {
  if (empty()) return Status::OK();
  std::optional<IpAddress> addr = ParseIpAddress(remote_address);
  if (!addr) {
    // Only an allow list can refuse what it cannot read; a deny list has nothing to match.
    if (allow.empty()) return Status::OK();
    return Status::PermissionDenied("the client address " + Quote(remote_address) +
                                    " cannot be matched against the allow list");
  }
  for (const Cidr& rule : deny) {
    if (rule.Contains(*addr)) {
      return Status::PermissionDenied("the client address " + addr->ToString() +
                                      " is denied by the rule " + rule.ToString());
    }
  }
  if (allow.empty()) return Status::OK();
  for (const Cidr& rule : allow) {
    if (rule.Contains(*addr)) return Status::OK();
  }
  return Status::PermissionDenied("the client address " + addr->ToString() +
                                  " is not in the allow list");
}

json AddressRules::ToJson() const {
  json a = json::array(), d = json::array();
  for (const Cidr& c : allow) a.push_back(c.ToString());
  for (const Cidr& c : deny) d.push_back(c.ToString());
  return {{"allow", std::move(a)},
          {"deny", std::move(d)},
          {"updated_at", updated_at_ms > 0 ? json(FormatIso8601(updated_at_ms)) : json()},
          {"updated_by", updated_by}};
}

Result<AddressRules> DecodeAddressRules(const json& body) {
  AddressRules rules;
  for (const char* field : {"allow", "deny"}) {
    std::vector<Cidr>& out = std::string_view(field) == "allow" ? rules.allow : rules.deny;
    if (!body.contains(field) || body[field].is_null()) continue;
    const json& list = body[field];
    if (!list.is_array()) {
      return Status::InvalidArgument("field '" + std::string(field) +
                                     "' must be an array of addresses or CIDR ranges");
    }
    if (list.size() > kMaxAddressRules) {
      return Status::InvalidArgument("field '" + std::string(field) + "' has " +
                                     std::to_string(list.size()) + " entries; at most " +
                                     std::to_string(kMaxAddressRules) + " are allowed");
    }
    for (size_t i = 0; i < list.size(); ++i) {
      const std::string where = "field '" + std::string(field) + "' entry " + std::to_string(i);
      if (!list[i].is_string()) return Status::InvalidArgument(where + " must be a string");
      Result<Cidr> c = Cidr::Parse(list[i].get_ref<const std::string&>());
      if (!c.ok()) return c.status().WithContext(where);
      out.push_back(*c);
    }
  }
  return rules;
}

// --- modes ------------------------------------------------------------------------------------

std::string_view ServiceModeName(ServiceMode mode) {
  switch (mode) {
    case ServiceMode::kOff:
      return "off";
    case ServiceMode::kReadOnly:
      return "read_only";
    case ServiceMode::kLockdown:
      return "lockdown";
  }
  return "off";
}

std::optional<ServiceMode> ParseServiceMode(std::string_view name) {
  if (name == "off") return ServiceMode::kOff;
  if (name == "read_only" || name == "read-only") return ServiceMode::kReadOnly;
  if (name == "lockdown") return ServiceMode::kLockdown;
  return std::nullopt;
}

json ModeState::ToJson() const {
  return {{"mode", std::string(ServiceModeName(mode))},
          {"reason", reason},
          {"since", since_ms > 0 ? json(FormatIso8601(since_ms)) : json()},
          {"set_by", set_by}};
}

json AuditReadsState::ToJson(bool configured) const {
  return {{"enabled", enabled.value_or(configured)},
          {"source", enabled ? "runtime" : "config"},
          {"since", since_ms > 0 ? json(FormatIso8601(since_ms)) : json()},
          {"set_by", set_by}};
}

RouteKind ClassifyRoute(std::string_view method, std::string_view pattern,
                        std::optional<KeyScope> scope) {
  if (!scope) return RouteKind::kPublic;
  // Admin routes that rewrite or remove knowledge data. A new admin route of that kind must be
  // named here (ModeTest.RoutesAreClassifiedByWhatTheyDo lists the known ones).
  if (method != "GET" && method != "HEAD") {
    for (std::string_view word : {"restore", "undelete", "purge"}) {
      if (pattern.find(word) != std::string_view::npos) return RouteKind::kWrite;
    }
  }
  if (pattern.rfind("/api/v1/admin/", 0) == 0) return RouteKind::kAdminControl;
  if (pattern.find("/api-keys") != std::string_view::npos) return RouteKind::kAdminControl;
  if (method == "GET" || method == "HEAD") return RouteKind::kRead;
  if (*scope == KeyScope::kRead) return RouteKind::kRead;  // POST .../query
  return RouteKind::kWrite;
}

Status CheckMode(const ModeState& mode, RouteKind kind, const ApiKeyRecord* key) {
  if (mode.mode == ServiceMode::kOff || kind == RouteKind::kPublic) return Status::OK();
  if (mode.mode == ServiceMode::kLockdown) {
    if (key && key->scope == KeyScope::kAdmin && key->projects.empty()) return Status::OK();
    return Status::Unavailable("the server is in lockdown" + SinceText(mode.since_ms) + ": " +
                               mode.reason +
                               ". Only administrators are served until an administrator lifts "
                               "it.");
  }
  if (kind == RouteKind::kWrite) {
    return Status::Unavailable("the server is read-only" + SinceText(mode.since_ms) + ": " +
                               mode.reason +
                               ". Reads work; changes are refused until an administrator lifts "
                               "it.");
  }
  return Status::OK();
}

// --- rate limiting ----------------------------------------------------------------------------

RateLimiter::RateLimiter(RateLimitOptions options, const Clock* clock)
    : options_(options), clock_(clock) {
  if (options_.max_buckets == 0) options_.max_buckets = 1;
}

int64_t RateLimiter::Take(const std::string& bucket) {
  if (!enabled()) return 0;
  const int64_t now = clock_->NowMillis();
  MutexLock lock(mu_);
  auto it = buckets_.find(bucket);
  if (it == buckets_.end()) {
    while (buckets_.size() >= options_.max_buckets && !lru_.empty()) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(bucket);
    it = buckets_.emplace(bucket, Bucket{options_.burst, now, lru_.begin()}).first;
  } else {
    Bucket& b = it->second;
    // A wall clock that steps back refills nothing (and does not move `last` back).
    const int64_t elapsed = std::max<int64_t>(0, now - b.last_ms);
    b.tokens = std::min(options_.burst,
                        b.tokens + static_cast<double>(elapsed) * options_.per_second / 1000.0);
    b.last_ms = std::max(b.last_ms, now);
    lru_.splice(lru_.begin(), lru_, b.lru);
  }
  Bucket& b = it->second;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return 0;
  }
  const double wait = (1.0 - b.tokens) / options_.per_second;
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait)));
}

size_t RateLimiter::buckets() const {
  MutexLock lock(mu_);
  return buckets_.size();
}

// --- persistence ------------------------------------------------------------------------------

namespace {

Result<json> LoadSettingJson(Catalog* catalog, const char* key) {
  KB_ASSIGN_OR_RETURN(std::optional<std::string> text, catalog->GetSetting(key));
  if (!text) return json();
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) {
    return Status::Corruption("catalog setting '" + std::string(key) + "' is not a JSON object");
  }
  if (!j.contains("format") || !j["format"].is_number_integer()) {
    return Status::Corruption("catalog setting '" + std::string(key) + "' has no format version");
  }
  if (j["format"].get<int64_t>() != kContainmentFormatVersion) {
    return Status::FailedPrecondition("catalog setting '" + std::string(key) + "' has format " +
                                      j["format"].dump() + "; this binary reads format " +
                                      std::to_string(kContainmentFormatVersion));
  }
  return j;
}

std::string StringField(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

int64_t TimeField(const json& j, const char* key) {
  return ParseIso8601(StringField(j, key)).value_or(0);
}

}  // namespace

Result<ModeState> LoadMode(Catalog* catalog) {
  KB_ASSIGN_OR_RETURN(json j, LoadSettingJson(catalog, kModeSettingKey));
  ModeState m;
  if (j.is_null()) return m;
  std::optional<ServiceMode> mode = ParseServiceMode(StringField(j, "mode"));
  if (!mode) {
    return Status::Corruption("catalog setting '" + std::string(kModeSettingKey) +
                              "' names an unknown mode " + Quote(StringField(j, "mode")));
  }
  m.mode = *mode;
  m.reason = StringField(j, "reason");
  m.since_ms = TimeField(j, "since");
  m.set_by = StringField(j, "set_by");
  return m;
}

Result<AddressRules> LoadAddressRules(Catalog* catalog) {
  KB_ASSIGN_OR_RETURN(json j, LoadSettingJson(catalog, kAddressRulesSettingKey));
  if (j.is_null()) return AddressRules();
  Result<AddressRules> rules = DecodeAddressRules(j);
  if (!rules.ok()) {
    return Status::Corruption("catalog setting '" + std::string(kAddressRulesSettingKey) +
                              "': " + rules.status().message());
  }
  rules->updated_at_ms = TimeField(j, "updated_at");
  rules->updated_by = StringField(j, "updated_by");
  return rules;
}

Result<AuditReadsState> LoadAuditReads(Catalog* catalog) {
  KB_ASSIGN_OR_RETURN(json j, LoadSettingJson(catalog, kAuditReadsSettingKey));
  AuditReadsState a;
  if (j.is_null()) return a;
  auto it = j.find("enabled");
  if (it == j.end() || !it->is_boolean()) {
    return Status::Corruption("catalog setting '" + std::string(kAuditReadsSettingKey) +
                              "' has no boolean 'enabled'");
  }
  a.enabled = it->get<bool>();
  a.since_ms = TimeField(j, "since");
  a.set_by = StringField(j, "set_by");
  return a;
}

Result<AuditReadsState> StoreAuditReads(Catalog* catalog, bool enabled, const std::string& set_by,
                                        int64_t now_ms) {
  AuditReadsState a{enabled, now_ms, set_by};
  json stored = {{"format", kContainmentFormatVersion},
                 {"enabled", enabled},
                 {"since", FormatIso8601(now_ms)},
                 {"set_by", set_by}};
  KB_RETURN_IF_ERROR(catalog->PutSetting(kAuditReadsSettingKey, Dump(stored)));
  return a;
}

Result<ModeState> StoreMode(Catalog* catalog, ServiceMode mode, const std::string& reason,
                            const std::string& set_by, int64_t now_ms) {
  if (mode != ServiceMode::kOff && TrimWhitespace(reason).empty()) {
    return Status::InvalidArgument("field 'reason' is required for mode '" +
                                   std::string(ServiceModeName(mode)) +
                                   "': say why; refused clients are shown it");
  }
  KB_RETURN_IF_ERROR(ValidateLabel("reason", reason, kMaxModeReasonBytes));
  ModeState m{mode, reason, now_ms, set_by};
  json stored = m.ToJson();
  stored["format"] = kContainmentFormatVersion;
  KB_RETURN_IF_ERROR(catalog->PutSetting(kModeSettingKey, Dump(stored)));
  return m;
}

Status StoreAddressRules(Catalog* catalog, const AddressRules& rules) {
  json stored = rules.ToJson();
  stored["format"] = kContainmentFormatVersion;
  return catalog->PutSetting(kAddressRulesSettingKey, Dump(stored));
}

// --- AccessControl ----------------------------------------------------------------------------

AccessControl::AccessControl(Catalog* catalog, AccessControlOptions options, const Clock* clock)
    : catalog_(catalog), options_(options), clock_(clock), limiter_(options.rate, clock) {}

Result<std::unique_ptr<AccessControl>> AccessControl::Open(Catalog* catalog,
                                                           AccessControlOptions options) {
  if (catalog == nullptr) return Status::InvalidArgument("no catalog");
  const RateLimitOptions& r = options.rate;
  if (!(r.per_second >= 0) || !std::isfinite(r.per_second)) {
    return Status::InvalidArgument("rate_limit_per_second must be >= 0 (0 = no limit)");
  }
  if (r.per_second > 0 && (!(r.burst >= 1) || !std::isfinite(r.burst))) {
    return Status::InvalidArgument("rate_limit_burst must be >= 1 when rate limiting is on");
  }
  if (options.poll_interval_ms < 0) return Status::InvalidArgument("poll interval must be >= 0");
  const Clock* clock = options.clock ? options.clock : SystemClock::Default();
  std::unique_ptr<AccessControl> ac(new AccessControl(catalog, options, clock));
  {
    MutexLock lock(ac->mu_);  // not yet shared; taken so that every write of mode_ is checked
    KB_ASSIGN_OR_RETURN(ac->mode_, LoadMode(catalog));
    KB_ASSIGN_OR_RETURN(ac->rules_, LoadAddressRules(catalog));
    KB_ASSIGN_OR_RETURN(ac->audit_reads_, LoadAuditReads(catalog));
    ac->loaded_at_ms_ = clock->NowMillis();
  }
  return ac;
}

void AccessControl::Refresh() {
  const int64_t now = clock_->NowMillis();
  {
    MutexLock lock(mu_);
    if (now >= loaded_at_ms_ && now - loaded_at_ms_ < options_.poll_interval_ms) return;
  }
  if (!refresh_mu_.TryLock()) return;  // another request is re-reading; use the current state
  Result<ModeState> mode = LoadMode(catalog_);
  Result<AddressRules> rules = LoadAddressRules(catalog_);
  Result<AuditReadsState> reads = LoadAuditReads(catalog_);
  MutexLock lock(mu_);
  if (reads.ok()) {
    audit_reads_ = std::move(reads).value();
  } else {
    LogError("cannot re-read the audit_reads switch; keeping the current one",
             Dump({{"error", reads.status().ToString()}}));
  }
  if (mode.ok()) {
    if (mode->mode != mode_.mode) {
      LogWarn("service mode changed",
              Dump({{"mode", std::string(ServiceModeName(mode->mode))}, {"by", mode->set_by}}));
    }
    mode_ = std::move(mode).value();
  } else {
    LogError("cannot re-read the service mode; keeping the current one",
             Dump({{"error", mode.status().ToString()}}));
  }
  if (rules.ok()) {
    rules_ = std::move(rules).value();
  } else {
    LogError("cannot re-read the address rules; keeping the current ones",
             Dump({{"error", rules.status().ToString()}}));
  }
  loaded_at_ms_ = now;
  refresh_mu_.Unlock();
}

Status AccessControl::CheckAddress(std::string_view remote_address) {
  Refresh();
  MutexLock lock(mu_);
  return rules_.Check(remote_address);
}

Status AccessControl::Admit(RouteKind kind, const ApiKeyRecord* key, const Status& auth,
                            std::string_view remote_address, int64_t* retry_after_seconds) {
  if (kind == RouteKind::kPublic) return auth;
  if (limiter_.enabled()) {
    const std::string bucket =
        key ? "key:" + key->id : "addr:" + std::string(remote_address.substr(0, 64));
    const int64_t wait = limiter_.Take(bucket);
    if (wait > 0) {
      if (retry_after_seconds) *retry_after_seconds = wait;
      std::string who = key ? "key " + key->id : "address " + Quote(remote_address);
      char rate[64];
      std::snprintf(rate, sizeof rate, "%g requests per second (burst %g)",
                    options_.rate.per_second, options_.rate.burst);
      return Status::ResourceExhausted("rate limit exceeded for " + who + ": at most " + rate +
                                       "; retry after " + std::to_string(wait) + " s");
    }
  }
  if (!auth.ok()) return auth;
  return CheckMode(mode(), kind, key);
}

ModeState AccessControl::mode() {
  Refresh();
  MutexLock lock(mu_);
  return mode_;
}

AddressRules AccessControl::rules() {
  Refresh();
  MutexLock lock(mu_);
  return rules_;
}

Result<ModeState> AccessControl::SetMode(ServiceMode mode, const std::string& reason,
                                         const std::string& by) {
  KB_ASSIGN_OR_RETURN(ModeState m, StoreMode(catalog_, mode, reason, by, clock_->NowMillis()));
  MutexLock lock(mu_);
  mode_ = m;
  LogWarn("service mode set",
          Dump(json{{"mode", std::string(ServiceModeName(mode))}, {"reason", reason}, {"by", by}}));
  return m;
}

AuditReadsState AccessControl::audit_reads() {
  Refresh();
  MutexLock lock(mu_);
  return audit_reads_;
}

Result<AuditReadsState> AccessControl::SetAuditReads(bool enabled, const std::string& by) {
  KB_ASSIGN_OR_RETURN(AuditReadsState a,
                      StoreAuditReads(catalog_, enabled, by, clock_->NowMillis()));
  MutexLock lock(mu_);
  audit_reads_ = a;
  LogWarn("audit_reads switched", Dump(json{{"enabled", enabled}, {"by", by}}));
  return a;
}

Status AccessControl::SetRules(AddressRules rules, const std::string& by) {
  rules.updated_at_ms = clock_->NowMillis();
  rules.updated_by = by;
  KB_RETURN_IF_ERROR(StoreAddressRules(catalog_, rules));
  MutexLock lock(mu_);
  LogWarn("address rules set", Dump(json{{"rules", rules.ToJson()}}));
  rules_ = std::move(rules);
  return Status::OK();
}

}  // namespace kb::api
