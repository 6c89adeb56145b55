// mcp_bench: what an MCP `search` call costs over the REST query it wraps, on a running server
// over loopback.
//
// The same phrases (cut from the project's own chunks, as http_bench does) are sent both ways,
// one client, one keep-alive connection per way, alternating which goes first: REST
// POST /api/v1/projects/{project}/query and MCP POST /mcp tools/call "search", both top_k 10,
// hybrid, use_cache=false. Per round it prints each way's p50/p99 and the median of the paired
// difference (MCP - REST of the same phrase); then the median over rounds. The client shares
// the machine's cores with the server.
//
//   mcp_bench --url http://127.0.0.1:8080 --key KEY --project bench [--queries 1000]
//             [--rounds 3]
#include <httplib.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench_util.h"
#include "common/clock.h"

namespace {

using nlohmann::json;

// One request; its latency in ms, or a negative number on failure (printed).
double Timed(httplib::Client& c, const std::string& path, const httplib::Headers& headers,
             const std::string& body, bool mcp) {
  const int64_t start = kb::MonotonicMicros();
  auto res = c.Post(path.c_str(), headers, body, "application/json");
  const double ms = static_cast<double>(kb::MonotonicMicros() - start) / 1000.0;
  if (!res || res->status != 200) {
    fprintf(stderr, "%s failed: %s\n", path.c_str(),
            res ? (std::to_string(res->status) + " " + res->body).c_str() : "no response");
    return -1;
  }
  if (mcp && res->body.find("\"isError\":false") == std::string::npos) {
    fprintf(stderr, "mcp search failed: %s\n", res->body.substr(0, 300).c_str());
    return -1;
  }
  return ms;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url = "http://127.0.0.1:8080", key, project = "bench";
  int queries = 1000, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url")
      url = v;
    else if (k == "--key")
      key = v;
    else if (k == "--project")
      project = v;
    else if (k == "--queries")
      queries = std::stoi(v);
    else if (k == "--rounds")
      rounds = std::stoi(v);
    else {
      fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  const httplib::Headers auth = {{"Authorization", "Bearer " + key}};
  const httplib::Headers mcp_headers = {{"Authorization", "Bearer " + key},
                                        {"Accept", "application/json, text/event-stream"},
                                        {"MCP-Protocol-Version", "2025-06-18"}};

  std::vector<std::string> texts;
  {
    httplib::Client c(url);
    for (const char* seed : {"the", "file", "data", "use", "backup", "key", "index", "query"}) {
      auto res =
          c.Get(("/api/v1/query/" + project + "?top_k=100&mode=keyword&q=" + seed).c_str(), auth);
      if (!res || res->status != 200) {
        fprintf(stderr, "sampling query failed\n");
        return 1;
      }
      const json page =
          json::parse(res->body);  // named: a range-for over a temporary's member dangles
      for (const auto& r : page["results"]) {
        texts.push_back(r["text"].get<std::string>());
      }
    }
  }
  const std::vector<std::string> phrases =
      kb::bench::QueryPhrases(texts, static_cast<size_t>(queries), 42);
  if (phrases.empty()) {
    fprintf(stderr, "no phrases from %zu chunks: is the project empty?\n", texts.size());
    return 1;
  }
  printf("%zu phrases from %zu sampled chunks; %d rounds\n", phrases.size(), texts.size(), rounds);

  httplib::Client rest(url), mcp(url);
  for (httplib::Client* c : {&rest, &mcp}) {
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);  // else each request waits ~40 ms for a delayed ACK
  }
  const std::string rest_path = "/api/v1/projects/" + project + "/query";
  std::vector<double> round_rest, round_mcp, round_diff;
  int id = 0;
  for (int round = 0; round < rounds; ++round) {
    std::vector<double> r_ms, m_ms, diff;
    for (size_t i = 0; i < phrases.size(); ++i) {
      const std::string rest_body =
          json{{"query", phrases[i]}, {"top_k", 10}, {"use_cache", false}}.dump();
      const std::string mcp_body = json{
          {"jsonrpc", "2.0"},
          {"id", ++id},
          {"method", "tools/call"},
          {"params",
           {{"name", "search"},
            {"arguments",
             {{"project", project},
              {"query", phrases[i]},
              {"top_k", 10},
              {"use_cache", false}}}}}}.dump();
      double a, b;
      if ((i + round) % 2 == 0) {
        a = Timed(rest, rest_path, auth, rest_body, false);
        b = Timed(mcp, "/mcp", mcp_headers, mcp_body, true);
      } else {
        b = Timed(mcp, "/mcp", mcp_headers, mcp_body, true);
        a = Timed(rest, rest_path, auth, rest_body, false);
      }
      if (a < 0 || b < 0) return 1;
      r_ms.push_back(a);
      m_ms.push_back(b);
      diff.push_back(b - a);
    }
    const double dmed = kb::bench::Median(diff);
    printf(
        "round %d: REST p50 %.3f ms p99 %.3f ms | MCP p50 %.3f ms p99 %.3f ms | "
        "MCP - REST per phrase: median %+.3f ms\n",
        round + 1, kb::bench::Percentile(r_ms, 0.5), kb::bench::Percentile(r_ms, 0.99),
        kb::bench::Percentile(m_ms, 0.5), kb::bench::Percentile(m_ms, 0.99), dmed);
    round_rest.push_back(kb::bench::Percentile(r_ms, 0.5));
    round_mcp.push_back(kb::bench::Percentile(m_ms, 0.5));
    round_diff.push_back(dmed);
  }
  printf(
      "median over rounds: REST p50 %.3f ms, MCP p50 %.3f ms, MCP - REST %+.3f ms "
      "(rounds %+.3f .. %+.3f)\n",
      kb::bench::Median(round_rest), kb::bench::Median(round_mcp), kb::bench::Median(round_diff),
      *std::min_element(round_diff.begin(), round_diff.end()),
      *std::max_element(round_diff.begin(), round_diff.end()));
  return 0;
}
