// The /metrics text must parse in Prometheus: escaping, cumulative buckets, +Inf, _sum/_count.
#include "api/metrics.h"

#include <gtest/gtest.h>

namespace kb::api {
namespace {

TEST(MetricsTest, LabelValuesAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  MetricsRegistry m;
  m.DeclareGauge("kb_documents", "Live documents.", {"project"});
  m.Set("kb_documents", {"we\"ird\\name\n"}, 3);
  const std::string out = m.Render();
  EXPECT_NE(out.find("kb_documents{project=\"we\\\"ird\\\\name\\n\"} 3\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("# TYPE kb_documents gauge\n"), std::string::npos);
  EXPECT_NE(out.find("# HELP kb_documents Live documents.\n"), std::string::npos);
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInf) {
  MetricsRegistry m;
  m.DeclareHistogram("kb_lat_seconds", "Latency.", {"route"}, {0.1, 1, 10});
  m.Observe("kb_lat_seconds", {"/x"}, 0.05);
  m.Observe("kb_lat_seconds", {"/x"}, 0.5);
  m.Observe("kb_lat_seconds", {"/x"}, 0.5);
  m.Observe("kb_lat_seconds", {"/x"}, 100);
  const std::string out = m.Render();
  EXPECT_NE(out.find("kb_lat_seconds_bucket{route=\"/x\",le=\"0.1\"} 1\n"), std::string::npos)
      << out;
  EXPECT_NE(out.find("kb_lat_seconds_bucket{route=\"/x\",le=\"1\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("kb_lat_seconds_bucket{route=\"/x\",le=\"10\"} 3\n"), std::string::npos);
  EXPECT_NE(out.find("kb_lat_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4\n"), std::string::npos);
  EXPECT_NE(out.find("kb_lat_seconds_count{route=\"/x\"} 4\n"), std::string::npos);
  EXPECT_NE(out.find("kb_lat_seconds_sum{route=\"/x\"} 101.05\n"), std::string::npos);
  EXPECT_NE(out.find("# TYPE kb_lat_seconds histogram\n"), std::string::npos);
}

TEST(MetricsTest, CountersAddAndWrongArityIsIgnored) {
  MetricsRegistry m;
  m.DeclareCounter("kb_http_requests_total", "Requests.", {"route", "method", "status"});
  m.Add("kb_http_requests_total", {"/health", "GET", "200"});
  m.Add("kb_http_requests_total", {"/health", "GET", "200"});
  m.Add("kb_http_requests_total", {"/health"});  // wrong arity: ignored
  m.Add("kb_unknown_total", {});                 // undeclared: ignored
  const std::string out = m.Render();
  EXPECT_NE(out.find("kb_http_requests_total{route=\"/health\",method=\"GET\",status=\"200\"} 2\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out.find("kb_unknown_total"), std::string::npos);
}

TEST(MetricsTest, ClearDropsSeriesAndValuesFormat) {
  MetricsRegistry m;
  m.DeclareGauge("kb_chunks", "Chunks.", {"project"});
  m.Set("kb_chunks", {"a"}, 1);
  m.Clear("kb_chunks");
  EXPECT_EQ(m.Render().find("kb_chunks{"), std::string::npos);
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(3), "3");
}

}  // namespace
}  // namespace kb::api
