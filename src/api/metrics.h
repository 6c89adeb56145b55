// A small Prometheus metrics registry: counters, gauges and histograms with labels, rendered
// in the text exposition format (version 0.0.4) for GET /metrics.
//
// Why our own: the server needs a handful of families, and Debian has no prometheus-cpp.
// Label values are escaped per the exposition format (\\, \", \n). Callers must use bounded
// label values (route patterns, never raw paths) — the registry keeps every series forever.
//
// Thread-safety: every method is safe to call concurrently (one mutex; updates are O(labels)).
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/thread_annotations.h"

namespace kb::api {

// Latency buckets in seconds, used for kb_http_request_duration_seconds.
inline const std::vector<double> kLatencyBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                    0.1,    0.25,  0.5,    1,     2.5,  5,     10};

class MetricsRegistry {
 public:
  // Declares a family. Re-declaring with the same name is a no-op. `buckets` only for histograms.
  void DeclareCounter(const std::string& name, const std::string& help,
                      std::vector<std::string> label_names = {});
  void DeclareGauge(const std::string& name, const std::string& help,
                    std::vector<std::string> label_names = {});
  void DeclareHistogram(const std::string& name, const std::string& help,
                        std::vector<std::string> label_names, std::vector<double> buckets);

  // Label values are given in the order of the declared label names. Using an undeclared
  // family or the wrong number of labels is ignored (metrics must never fail a request).
  void Add(const std::string& name, const std::vector<std::string>& labels, double delta = 1);
  void Set(const std::string& name, const std::vector<std::string>& labels, double value);
  void Observe(const std::string& name, const std::vector<std::string>& labels, double value);
  // Drops every series of a family (gauges describing a changing set, e.g. per project).
  void Clear(const std::string& name);

  // The whole registry in exposition format, families in name order.
  std::string Render() const;

 private:
  enum class Type { kCounter, kGauge, kHistogram };
  struct Series {
    double value = 0;                     // counter / gauge
    std::vector<uint64_t> bucket_counts;  // histogram, not cumulative (one per bucket)
    uint64_t count = 0;
    double sum = 0;
  };
  struct Family {
    Type type = Type::kCounter;
    std::string help;
    std::vector<std::string> label_names;
    std::vector<double> buckets;
    std::map<std::vector<std::string>, Series> series;
  };
  void Declare(const std::string& name, Type type, const std::string& help,
               std::vector<std::string> label_names, std::vector<double> buckets);

  mutable Mutex mu_;
  std::map<std::string, Family> families_ GUARDED_BY(mu_);
};

// Exposition-format helpers, exposed for tests.
std::string EscapeLabelValue(std::string_view value);
std::string FormatMetricValue(double value);

}  // namespace kb::api
