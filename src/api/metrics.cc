// Prometheus text rendering (format: https://prometheus.io/docs/instrumenting/exposition_formats/).
#include "api/metrics.h"

#include <charconv>
#include <cmath>

namespace kb::api {

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

namespace {
std::string EscapeHelp(std::string_view help) {
  std::string out;
  for (char c : help) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out.push_back(c);
  }
  return out;
}

std::string LabelSet(const std::vector<std::string>& names, const std::vector<std::string>& values,
                     const std::string& extra_name = {}, const std::string& extra_value = {}) {
  if (names.empty() && extra_name.empty()) return {};
  std::string out = "{";
  bool first = true;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (!first) out += ",";
    first = false;
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    if (!first) out += ",";
    out += extra_name + "=\"" + EscapeLabelValue(extra_value) + "\"";
  }
  out += "}";
  return out;
}
}  // namespace

std::string FormatMetricValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, value);
  if (ec != std::errc()) return "0";
  return std::string(buf, end);
}

void MetricsRegistry::Declare(const std::string& name, Type type, const std::string& help,
                              std::vector<std::string> label_names, std::vector<double> buckets) {
  MutexLock lock(mu_);
  if (families_.count(name)) return;
  Family f;
  f.type = type;
  f.help = help;
  f.label_names = std::move(label_names);
  f.buckets = std::move(buckets);
  families_.emplace(name, std::move(f));
}

void MetricsRegistry::DeclareCounter(const std::string& name, const std::string& help,
                                     std::vector<std::string> label_names) {
  Declare(name, Type::kCounter, help, std::move(label_names), {});
}
void MetricsRegistry::DeclareGauge(const std::string& name, const std::string& help,
                                   std::vector<std::string> label_names) {
  Declare(name, Type::kGauge, help, std::move(label_names), {});
}
void MetricsRegistry::DeclareHistogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> label_names,
                                       std::vector<double> buckets) {
  Declare(name, Type::kHistogram, help, std::move(label_names), std::move(buckets));
}

void MetricsRegistry::Add(const std::string& name, const std::vector<std::string>& labels,
                          double delta) {
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type == Type::kHistogram) return;
  if (labels.size() != it->second.label_names.size()) return;
  it->second.series[labels].value += delta;
}

void MetricsRegistry::Set(const std::string& name, const std::vector<std::string>& labels,
                          double value) {
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type == Type::kHistogram) return;
  if (labels.size() != it->second.label_names.size()) return;
  it->second.series[labels].value = value;
}

void MetricsRegistry::Observe(const std::string& name, const std::vector<std::string>& labels,
                              double value) {
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end() || it->second.type != Type::kHistogram) return;
  Family& f = it->second;
  if (labels.size() != f.label_names.size()) return;
  Series& s = f.series[labels];
  if (s.bucket_counts.size() != f.buckets.size()) s.bucket_counts.assign(f.buckets.size(), 0);
  for (size_t i = 0; i < f.buckets.size(); ++i) {
    if (value <= f.buckets[i]) {
      ++s.bucket_counts[i];
      break;  // stored per bucket; made cumulative when rendered
    }
  }
  ++s.count;
  s.sum += value;
}

void MetricsRegistry::Clear(const std::string& name) {
  MutexLock lock(mu_);
  auto it = families_.find(name);
  if (it != families_.end()) it->second.series.clear();
}

std::string MetricsRegistry::Render() const {
  MutexLock lock(mu_);
  std::string out;
  for (const auto& [name, f] : families_) {
    const char* type = f.type == Type::kCounter ? "counter"
                       : f.type == Type::kGauge ? "gauge"
                                                : "histogram";
    out += "# HELP " + name + " " + EscapeHelp(f.help) + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto& [labels, s] : f.series) {
      if (f.type != Type::kHistogram) {
        out += name + LabelSet(f.label_names, labels) + " " + FormatMetricValue(s.value) + "\n";
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < f.buckets.size(); ++i) {
        cumulative += i < s.bucket_counts.size() ? s.bucket_counts[i] : 0;
        out += name + "_bucket" +
               LabelSet(f.label_names, labels, "le", FormatMetricValue(f.buckets[i])) + " " +
               std::to_string(cumulative) + "\n";
      }
      out += name + "_bucket" + LabelSet(f.label_names, labels, "le", "+Inf") + " " +
             std::to_string(s.count) + "\n";
      out +=
          name + "_sum" + LabelSet(f.label_names, labels) + " " + FormatMetricValue(s.sum) + "\n";
      out +=
          name + "_count" + LabelSet(f.label_names, labels) + " " + std::to_string(s.count) + "\n";
    }
  }
  return out;
}

}  // namespace kb::api
