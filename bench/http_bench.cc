// http_bench: query latency and throughput of a running server over HTTP on loopback.
//
// It sends GET /api/v1/query/{project}?q=... with phrases drawn from the project's own chunks
// (fetched first through the API, so the queries hit real content), from --clients concurrent
// clients (each its own keep-alive connection) for --seconds, --rounds times, and prints per
// round: requests, errors, queries/s, p50/p95/p99 latency; then the median over rounds.
// The client shares the machine's cores with the server: say so when quoting numbers.
//
//   http_bench --url http://127.0.0.1:8080 --key KEY --project bench [--clients 8]
//              [--seconds 10] [--rounds 3]
#include <httplib.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.h"
#include "common/clock.h"
#include "common/text_util.h"

int main(int argc, char** argv) {
  std::string url = "http://127.0.0.1:8080", key, project = "bench";
  int clients = 8, seconds = 10, rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i], v = argv[i + 1];
    if (k == "--url") url = v;
    else if (k == "--key") key = v;
    else if (k == "--project") project = v;
    else if (k == "--clients") clients = std::stoi(v);
    else if (k == "--seconds") seconds = std::stoi(v);
    else if (k == "--rounds") rounds = std::stoi(v);
    else {
      fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  httplib::Headers auth = {{"Authorization", "Bearer " + key}};

  // Sample real chunk texts through the API: a few broad queries' results.
  std::vector<std::string> texts;
  {
    httplib::Client c(url);
    for (const char* seed : {"the", "system", "file", "version", "debian", "package", "error",
                             "license", "data", "use"}) {
      auto res = c.Get(("/api/v1/query/" + project + "?top_k=100&mode=keyword&q=" + seed).c_str(),
                       auth);
      if (!res || res->status != 200) {
        fprintf(stderr, "sampling query failed: %s\n",
                res ? (std::to_string(res->status) + " " + res->body).c_str() : "no response");
        return 1;
      }
      auto j = nlohmann::json::parse(res->body);
      for (auto& r : j["results"]) texts.push_back(r["text"].get<std::string>());
    }
  }
  std::vector<std::string> queries = kb::bench::QueryPhrases(texts, 2000, 7);
  if (queries.empty()) {
    fprintf(stderr, "no queries could be made from the project's text\n");
    return 1;
  }
  printf("machine: %u cores shared by server and %d clients; %zu distinct queries\n",
         std::thread::hardware_concurrency(), clients, queries.size());

  std::vector<double> qps_r, p50_r, p99_r;
  for (int round = 0; round < rounds; ++round) {
    std::mutex mu;
    std::vector<double> lat;
    std::atomic<int64_t> errors{0};
    const int64_t end_us = kb::MonotonicMicros() + int64_t{seconds} * 1'000'000;
    std::vector<std::thread> threads;
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([&, t] {
        httplib::Client c(url);
        c.set_keep_alive(true);
        c.set_tcp_nodelay(true);
        std::vector<double> mine;
        size_t i = static_cast<size_t>(t) * 7919 + static_cast<size_t>(round) * 104729;
        while (kb::MonotonicMicros() < end_us) {
          const std::string& q = queries[i++ % queries.size()];
          // use_cache=false: measure the search, not the query cache.
          std::string path = "/api/v1/query/" + project +
                             "?use_cache=false&q=" + kb::UriEncode(q, /*keep_slash=*/false);
          int64_t t0 = kb::MonotonicMicros();
          auto res = c.Get(path.c_str(), auth);
          double ms = static_cast<double>(kb::MonotonicMicros() - t0) / 1000.0;
          if (!res || res->status != 200) {
            errors++;
            continue;
          }
          mine.push_back(ms);
        }
        std::lock_guard<std::mutex> lock(mu);
        lat.insert(lat.end(), mine.begin(), mine.end());
      });
    }
    for (auto& th : threads) th.join();
    double qps = static_cast<double>(lat.size()) / seconds;
    qps_r.push_back(qps);
    p50_r.push_back(kb::bench::Percentile(lat, 0.5));
    p99_r.push_back(kb::bench::Percentile(lat, 0.99));
    printf("round %d: %zu ok, %lld errors, %.0f queries/s, p50 %.2f ms, p95 %.2f ms, p99 %.2f ms\n",
           round + 1, lat.size(), static_cast<long long>(errors.load()), qps, p50_r.back(),
           kb::bench::Percentile(lat, 0.95), p99_r.back());
  }
  printf("median of %d rounds (%d clients): %.0f queries/s, p50 %.2f ms, p99 %.2f ms\n", rounds,
         clients, kb::bench::Median(qps_r), kb::bench::Median(p50_r), kb::bench::Median(p99_r));
  return 0;
}
