// Containment: the controls an operator reaches for during an incident, applied by the server's
// middleware (ApiServer::Dispatch) to every request.
//
//   - Address rules: a deny list and an optional allow list of IPv4/IPv6 addresses and CIDR
//     ranges, checked first, on the socket peer address, before authentication (403).
//   - Service mode: `off` (normal), `read_only` (requests that change knowledge data get 503) or
//     `lockdown` (only unrestricted admin keys are served; 503 for everything else except
//     /health and /ready).
//   - Rate limits: a token bucket per API key id, and per remote address for requests that did
//     not authenticate (429 with Retry-After).
//
// The mode and the address rules are durable: they live in the catalog's settings table
// (docs/format/DATABASE.md, "Containment settings") so that they survive a restart and so that
// `knowledgebeast lockdown --data-dir` can change them without the server. A running server
// re-reads them at most once per poll interval (default 1 s), lazily, on the request that finds
// them stale: a change made by another process is in force within about a second, and an idle
// server does no work.
//
// IPv4 addresses are held as IPv4-mapped IPv6 (::ffff:a.b.c.d), so a rule written for
// 10.0.0.0/8 also matches a peer seen as ::ffff:10.1.2.3 on a dual-stack socket, and ::/0
// matches every address.
//
// Thread-safety: Cidr, AddressRules, ModeState and the free functions are values / pure.
// RateLimiter and AccessControl are safe for concurrent use.
#pragma once

#include <array>
#include <cstdint>
#include <list>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "common/thread_annotations.h"
#include "store/catalog.h"

namespace kb::api {

// Limits and defaults in one place (docs/CONFIG.md and docs/API.md quote these).
//
// Rate limit defaults: one node measured 669 queries/s over HTTP with 8 clients sharing one key
// (docs/PERFORMANCE.md), so a per-key limit below that would throttle a legitimate service
// client on a default install. 1000/s with a burst of 2000 never does on that hardware, and still
// keeps one runaway or stolen key from monopolising a bigger machine. Operators tighten it.
inline constexpr double kDefaultRatePerSecond = 1000;
inline constexpr double kDefaultRateBurst = 2000;
// Buckets kept at most (about 100 bytes each); the least recently used is dropped beyond it.
inline constexpr size_t kMaxRateBuckets = 65536;
// How stale the mode and address rules may be before a request re-reads them.
inline constexpr int64_t kContainmentPollIntervalMs = 1000;
inline constexpr size_t kMaxAddressRules = 1000;     // per list
inline constexpr size_t kMaxAddressRuleLength = 64;  // characters per entry
inline constexpr size_t kMaxModeReasonBytes = 1000;
// Catalog settings keys (docs/format/DATABASE.md).
inline constexpr char kModeSettingKey[] = "containment.mode";
inline constexpr char kAddressRulesSettingKey[] = "containment.ip_rules";
inline constexpr char kAuditReadsSettingKey[] = "containment.audit_reads";
inline constexpr int kContainmentFormatVersion = 1;

// ---------------------------------------------------------------------------------------------
// Addresses

// An IPv6 address; IPv4 ones are stored IPv4-mapped.
struct IpAddress {
  std::array<uint8_t, 16> bytes{};
  bool IsV4() const;  // IPv4-mapped
  // "10.0.0.1" for IPv4 (mapped or not), canonical RFC 5952 text for IPv6.
  std::string ToString() const;
  bool operator==(const IpAddress& other) const = default;
};

// Parses "10.0.0.1", "::1", "::ffff:10.0.0.1". No ports, brackets, zone ids or whitespace.
std::optional<IpAddress> ParseIpAddress(std::string_view text);

// An address range. A bare address is a single-address range (/32 or /128).
class Cidr {
 public:
  // "10.0.0.0/8", "2001:db8::/32", "::ffff:10.0.0.0/104", "192.168.1.7". InvalidArgument if it is
  // not an address, the prefix is out of range, or host bits are set ("10.0.0.1/8": write
  // 10.0.0.0/8).
  static Result<Cidr> Parse(std::string_view text);
  bool Contains(const IpAddress& address) const;
  // Canonical text: "10.0.0.0/8", "::1/128", "0.0.0.0/0".
  std::string ToString() const;
  bool operator==(const Cidr& other) const = default;

 private:
  IpAddress network_;
  int prefix_ = 128;  // over the 128-bit (mapped) space
};

// Deny wins over allow; an empty allow list means every address that is not denied.
struct AddressRules {
  std::vector<Cidr> allow;
  std::vector<Cidr> deny;
  int64_t updated_at_ms = 0;
  std::string updated_by;

  bool empty() const { return allow.empty() && deny.empty(); }
  // PermissionDenied naming the address and the rule that refused it.
  Status Check(std::string_view remote_address) const;
  nlohmann::json ToJson() const;
};

// Decodes the lists of `body` ({"allow": [...], "deny": [...]}, both optional, strings only).
// InvalidArgument naming the list, the index and the entry that is not an address or range.
Result<AddressRules> DecodeAddressRules(const nlohmann::json& body);

// ---------------------------------------------------------------------------------------------
// Service mode

enum class ServiceMode { kOff, kReadOnly, kLockdown };
std::string_view ServiceModeName(ServiceMode mode);  // "off" | "read_only" | "lockdown"
// Also accepts "read-only" (the CLI's spelling).
std::optional<ServiceMode> ParseServiceMode(std::string_view name);

struct ModeState {
  ServiceMode mode = ServiceMode::kOff;
  std::string reason;
  int64_t since_ms = 0;
  std::string set_by;  // key id, "cli" or empty
  nlohmann::json ToJson() const;
};

// Whether successful reads are audited, as switched at run time (PUT /api/v1/admin/audit/reads,
// `knowledgebeast audit reads on|off`): an incident should not need a restart to start
// recording who reads what. Unset: the configuration's `audit_reads` decides.
struct AuditReadsState {
  std::optional<bool> enabled;  // nullopt: never switched at run time
  int64_t since_ms = 0;
  std::string set_by;  // key id, "cli" or empty
  // {"enabled": effective, "source": "runtime"|"config", "since", "set_by"}.
  nlohmann::json ToJson(bool configured) const;
};

// What a route does, for the mode decision (see ClassifyRoute).
enum class RouteKind {
  kPublic,        // no authentication: /health, /ready
  kRead,          // reads data: GET/HEAD, and POST routes needing only read scope (queries)
  kAdminControl,  // node administration that does not change knowledge data: keys, backups,
                  // integrity checks, audit, containment itself
  kWrite,         // changes knowledge data (projects, documents, restores, undelete, purge)
};

// `scope` is the route's; nullopt = unauthenticated route.
RouteKind ClassifyRoute(std::string_view method, std::string_view pattern,
                        std::optional<KeyScope> scope);

// Whether `mode` lets a request of `kind` by `key` (null = none) through: OK, or Unavailable with
// a message naming the mode, its reason and how it is lifted. Lockdown serves only admin keys
// that are not limited to projects.
Status CheckMode(const ModeState& mode, RouteKind kind, const ApiKeyRecord* key);

// ---------------------------------------------------------------------------------------------
// Rate limiting

struct RateLimitOptions {
  double per_second = kDefaultRatePerSecond;  // 0 = no limit
  double burst = kDefaultRateBurst;           // bucket size; must be >= 1 when limiting
  size_t max_buckets = kMaxRateBuckets;
};

// Token buckets by name. A bucket starts full (burst tokens) and refills at per_second; each
// request takes one token. Buckets are kept in least-recently-used order and dropped beyond
// max_buckets; a dropped bucket comes back full, which only ever favours the client, and a bucket
// idle long enough to refill is indistinguishable from a new one anyway.
class RateLimiter {
 public:
  RateLimiter(RateLimitOptions options, const Clock* clock);
  // Takes a token from `bucket`: 0 if the request may proceed, else the whole seconds (>= 1)
  // until a token will be available.
  int64_t Take(const std::string& bucket) EXCLUDES(mu_);
  size_t buckets() const EXCLUDES(mu_);
  bool enabled() const { return options_.per_second > 0; }

 private:
  struct Bucket {
    double tokens;
    int64_t last_ms;
    std::list<std::string>::iterator lru;
  };
  RateLimitOptions options_;
  const Clock* clock_;
  mutable Mutex mu_;
  std::list<std::string> lru_ GUARDED_BY(mu_);  // most recent first
  std::unordered_map<std::string, Bucket> buckets_ GUARDED_BY(mu_);
};

// ---------------------------------------------------------------------------------------------
// The state the server holds

struct AccessControlOptions {
  RateLimitOptions rate;
  int64_t poll_interval_ms = kContainmentPollIntervalMs;
  const Clock* clock = nullptr;  // null = SystemClock
};

// Reads the stored mode / address rules of a catalog; defaults when never set. Corruption if the
// stored value cannot be decoded (a silently ignored lockdown would be worse than an error).
Result<ModeState> LoadMode(Catalog* catalog);
Result<AddressRules> LoadAddressRules(Catalog* catalog);
// Validates (reason required for read_only and lockdown, UTF-8, bounded) and stores the mode.
Result<ModeState> StoreMode(Catalog* catalog, ServiceMode mode, const std::string& reason,
                            const std::string& set_by, int64_t now_ms);
Status StoreAddressRules(Catalog* catalog, const AddressRules& rules);
Result<AuditReadsState> LoadAuditReads(Catalog* catalog);
Result<AuditReadsState> StoreAuditReads(Catalog* catalog, bool enabled, const std::string& set_by,
                                        int64_t now_ms);

class AccessControl {
 public:
  // Loads the stored mode and rules of `catalog` (which must outlive the object). Fails if they
  // cannot be read or decoded, or if the options are nonsensical.
  static Result<std::unique_ptr<AccessControl>> Open(Catalog* catalog,
                                                     AccessControlOptions options);

  // First check of every request: PermissionDenied if the address rules refuse `remote_address`.
  Status CheckAddress(std::string_view remote_address);
  // After authentication (`auth` is its outcome; `key` the authenticated key or null): the rate
  // limit (ResourceExhausted, *retry_after_seconds set), then the authentication failure itself,
  // then the mode (Unavailable). Public routes are neither rate limited nor refused by the mode.
  Status Admit(RouteKind kind, const ApiKeyRecord* key, const Status& auth,
               std::string_view remote_address, int64_t* retry_after_seconds);

  ModeState mode();
  AddressRules rules();
  // Store, then apply at once in this process.
  Result<ModeState> SetMode(ServiceMode mode, const std::string& reason, const std::string& by);
  Status SetRules(AddressRules rules, const std::string& by);
  AuditReadsState audit_reads();
  Result<AuditReadsState> SetAuditReads(bool enabled, const std::string& by);

  RateLimiter& limiter() { return limiter_; }

 private:
  AccessControl(Catalog* catalog, AccessControlOptions options, const Clock* clock);
  // Re-reads the settings if they are older than the poll interval. A failed read keeps the
  // previous state (and is logged): a flaky read must not lift a lockdown.
  void Refresh() EXCLUDES(mu_, refresh_mu_);

  Catalog* catalog_;
  AccessControlOptions options_;
  const Clock* clock_;
  RateLimiter limiter_;
  // One re-read at a time; others use the current state. Taken before mu_, never inside it.
  Mutex refresh_mu_ ACQUIRED_BEFORE(mu_);
  Mutex mu_;
  ModeState mode_ GUARDED_BY(mu_);
  AddressRules rules_ GUARDED_BY(mu_);
  AuditReadsState audit_reads_ GUARDED_BY(mu_);
  int64_t loaded_at_ms_ GUARDED_BY(mu_) = 0;
};

}  // namespace kb::api
