// API-key authentication and authorisation rules for the HTTP layer.
//
// A key is presented as "Authorization: Bearer <secret>" or "X-API-Key: <secret>". The
// KnowledgeBase checks it (hash lookup, revoked, expired); here we apply the route's needs:
// scopes nest (read ⊂ write ⊂ admin), and a key limited to projects may touch only those.
// Missing/unknown/revoked/expired keys are 401; insufficient scope or a foreign project is 403.
//
// Thread-safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "store/catalog.h"

namespace kb::api {

// The secret the client presented, or empty. Authorization wins over X-API-Key; a malformed
// Authorization header (not "Bearer <token>") yields empty.
std::string PresentedSecret(std::string_view authorization, std::string_view x_api_key);

// PermissionDenied if `key`'s scope is below `needed`.
Status CheckScope(const ApiKeyRecord& key, KeyScope needed);

}  // namespace kb::api
