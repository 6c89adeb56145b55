// See admin_http.h.
#include "cli/admin_http.h"

#include <httplib.h>

namespace kb::cli {

Result<AdminHttpResponse> AdminHttp(const Config& config, const std::string& method,
                                    const std::string& path, const std::string& json_body,
                                    int timeout_seconds,
                                    const std::multimap<std::string, std::string>& query) {
  httplib::Client client(config.url);
  client.set_connection_timeout(timeout_seconds, 0);
  client.set_read_timeout(timeout_seconds, 0);
  if (!config.api_key.empty()) client.set_bearer_token_auth(config.api_key.c_str());
  httplib::Result r = method == "GET"   ? client.Get(path, query, httplib::Headers{})
                      : method == "PUT" ? client.Put(path, json_body, "application/json")
                                        : client.Post(path, json_body, "application/json");
  if (!r && r.error() == httplib::Error::SSLServerVerification) {
    return Status::Unavailable("cannot reach " + config.url +
                               ": its TLS certificate is not trusted (for a private CA, point "
                               "SSL_CERT_FILE at the CA's PEM file)");
  }
  if (!r) {
    return Status::Unavailable("cannot reach " + config.url + ": " + httplib::to_string(r.error()));
  }
  return AdminHttpResponse{r->status, r->body};
}

}  // namespace kb::cli
