// One request to the admin API of the server at --url, for commands that act on a running
// server (lockdown, ip-rules, audit reads, doctor): the client with its timeouts and the key,
// and the two transport failures said the same way everywhere (unreachable; a TLS certificate
// that is not trusted). What a status other than 200 means is the caller's to say.
//
// Thread-safety: a function; each call has its own client.
#pragma once

#include <map>
#include <string>

#include "cli/config.h"
#include "common/status.h"

namespace kb::cli {

struct AdminHttpResponse {
  int status = 0;
  std::string body;
};

// `method` is GET (no body; `query` encoded into the URL), POST or PUT (`json_body` sent as
// application/json). Unavailable when no answer came.
Result<AdminHttpResponse> AdminHttp(const Config& config, const std::string& method,
                                    const std::string& path, const std::string& json_body,
                                    int timeout_seconds,
                                    const std::multimap<std::string, std::string>& query = {});

}  // namespace kb::cli
