// KeyService: the API keys, kept in the catalog. It creates keys (a fresh random secret, shown
// once; only its SHA-256 is stored), lists, revokes, rotates (with an optional overlap during
// which the previous secret still works), revokes all at once, reinstates keys a project delete
// revoked, authenticates a presented secret, and makes sure an admin key exists at first start.
// The facade hands it out (KnowledgeBase::keys()); routes and commands call it there.
//
// Thread-safety: safe for concurrent use; every state change is one catalog transaction, and no
// key is cached (a revocation is seen by the next Authenticate on every thread).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.h"
#include "common/status.h"
#include "service/types.h"
#include "store/catalog.h"

namespace kb {

// Keys older than this cannot be created (expires_in_days, expires_at).
inline constexpr int kMaxKeyLifetimeDays = 3650;

class KeyService {
 public:
  // The id of the live project with this id or name (NotFound otherwise): a key is limited to
  // projects by id.
  using ProjectResolver = std::function<Result<std::string>(const std::string& id_or_name)>;

  // `catalog` must outlive the service.
  KeyService(Catalog* catalog, const Clock* clock, ProjectResolver resolve_project);

  // Creates a key with a fresh random secret ("kb_" + 43 base64url chars).
  // `expires_at_ms` (absolute, in the future, within the maximum lifetime) is an alternative
  // to expires_in_days; giving both is InvalidArgument.
  Result<CreatedKey> CreateKey(const std::string& name, KeyScope scope,
                               const std::vector<std::string>& projects,
                               std::optional<int> expires_in_days, const Actor& actor,
                               std::optional<int64_t> expires_at_ms = std::nullopt);
  Result<std::vector<ApiKeyRecord>> ListKeys();
  Status RevokeKey(const std::string& key_id, const Actor& actor);
  // Issues a new secret for the key (same id, scope, projects, expiry). With overlap_seconds > 0
  // (at most kMaxRotationOverlapSeconds) the old secret keeps working until then; otherwise it
  // stops at once. NotFound; FailedPrecondition for a revoked key.
  Result<CreatedKey> RotateKey(const std::string& key_id, int64_t overlap_seconds,
                               const Actor& actor);
  // Revokes every live key except `caller_key_id`; with include_admin every key, after creating
  // a new admin key that is returned once. Without a caller (direct-mode CLI) include_admin is
  // required (InvalidArgument), so that the data directory never ends up with no admin key.
  Result<RevokeAllResult> RevokeAllKeys(const std::string& caller_key_id, bool include_admin,
                                        const Actor& actor);
  // Undoes a revocation caused by a project delete. FailedPrecondition if the key is not
  // revoked, was revoked for another reason (those may follow a compromise: create a new key),
  // or one of its projects is still deleted.
  Status ReinstateKey(const std::string& key_id, const Actor& actor);
  // The key for a presented secret. Unauthenticated if unknown, revoked or expired (the message
  // says which; `out_key_id` is set when the key exists, for the audit log).
  Result<ApiKeyRecord> Authenticate(const std::string& secret, std::string* out_key_id = nullptr);
  // First start: if no admin key exists, creates one — from `admin_token` if given (stored as a
  // hash), else random. Returns the secret to show once, or nullopt if an admin key existed or
  // the token was supplied by the caller.
  Result<std::optional<std::string>> EnsureAdminKey(const std::string& admin_token);

 private:
  // InvalidArgument unless the expiry given (in days, or as an absolute time) is in range.
  Status CheckExpiry(std::optional<int> expires_in_days, std::optional<int64_t> expires_at_ms,
                     int64_t now);

  Catalog* catalog_;
  const Clock* clock_;
  ProjectResolver resolve_project_;
};

}  // namespace kb
