// Key presentation and scope checks (see auth.h).
#include "api/auth.h"

#include "common/text_util.h"

namespace kb::api {

std::string PresentedSecret(std::string_view authorization, std::string_view x_api_key) {
  std::string_view auth = TrimWhitespace(authorization);
  if (!auth.empty()) {
    constexpr std::string_view kBearer = "bearer ";
    if (auth.size() > kBearer.size() && ToLowerAscii(auth.substr(0, kBearer.size())) == kBearer) {
      return std::string(TrimWhitespace(auth.substr(kBearer.size())));
    }
    return {};
  }
  return std::string(TrimWhitespace(x_api_key));
}

Status CheckScope(const ApiKeyRecord& key, KeyScope needed) {
  if (static_cast<int>(key.scope) >= static_cast<int>(needed)) return Status::OK();
  return Status::PermissionDenied("this key has scope '" + std::string(KeyScopeName(key.scope)) +
                                  "'; the route needs '" + std::string(KeyScopeName(needed)) + "'");
}

}  // namespace kb::api
