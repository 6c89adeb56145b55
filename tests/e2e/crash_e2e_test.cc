// SIGKILL during a large ingest: every document the server acknowledged (2xx) must survive a
// restart and be searchable, and no document may be half-visible — each listed document's
// chunk_count equals the number of its chunks that search can find.
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "server_process.h"
#include "test_util.h"

namespace kb::testing {
namespace {

using nlohmann::json;

// Every paragraph carries the document's token, so every chunk of the document contains it and
// a keyword search for the token finds each chunk.
std::string DocumentText(int i, const std::string& token) {
  std::string text = "# Report " + std::to_string(i) + "\n\n";
  for (int p = 0; p < 12; ++p) {
    text += "Paragraph " + std::to_string(p) + " of " + token +
            " records observations of migrating cranes, river levels and the weather over the "
            "northern marshes during the long autumn season of the survey year.\n\n";
  }
  return text;
}

TEST(E2eCrashTest, SigkillDuringIngestLosesNoAcknowledgedDocument) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"), dir.Sub("server.log"));
  ASSERT_TRUE(server.Start()) << server.Log();
  {
    auto c = server.Client();
    ASSERT_EQ(Call(*c, "POST", "/api/v1/projects", kE2eAdminToken, R"({"name":"crash"})").status,
              201);
  }

  std::mutex mu;
  std::map<std::string, std::string> acked;  // token -> document id
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    auto c = server.Client();
    c->set_read_timeout(10, 0);
    for (int i = 0; i < 100000 && !stop; ++i) {
      const std::string token = "tok" + std::to_string(100000 + i) + "x";
      HttpResp r = Call(*c, "POST", "/api/v1/projects/crash/documents", kE2eAdminToken,
                        json{{"content", DocumentText(i, token)},
                             {"source", "report-" + std::to_string(i) + ".md"}}
                            .dump());
      if (r.status == 0) break;  // the server is gone
      if (r.status >= 200 && r.status < 300) {
        std::lock_guard lock(mu);
        acked[token] = r.body["document"]["id"];
      }
    }
  });
  // Let a good number of documents through, then kill without warning.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    {
      std::lock_guard lock(mu);
      if (acked.size() >= 150) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  server.Stop(SIGKILL);
  stop = true;
  writer.join();
  ASSERT_GE(acked.size(), 10u) << server.Log();

  ASSERT_TRUE(server.Start()) << server.Log();
  auto c = server.Client();
  for (const auto& [token, id] : acked) {
    HttpResp doc = Call(*c, "GET", "/api/v1/projects/crash/documents/" + id, kE2eAdminToken);
    ASSERT_EQ(doc.status, 200) << "acknowledged document " << id << " lost: " << doc.raw;
    HttpResp q = Call(*c, "POST", "/api/v1/projects/crash/query", kE2eAdminToken,
                      json{{"query", token}, {"mode", "keyword"}, {"top_k", 100}}.dump());
    ASSERT_EQ(q.status, 200) << q.raw;
    bool found = false;
    for (const auto& h : q.body["results"]) found |= h["document_id"] == id;
    EXPECT_TRUE(found) << "acknowledged document " << id << " not searchable";
    HttpResp v =
        Call(*c, "POST", "/api/v1/projects/crash/query", kE2eAdminToken,
             json{{"query", token + " cranes marshes"}, {"mode", "vector"}, {"top_k", 100}}.dump());
    EXPECT_EQ(v.status, 200);
  }
  // No half-visible document: for every listed document, all of its chunks and only those.
  HttpResp list = Call(*c, "GET", "/api/v1/projects/crash/documents?limit=1000", kE2eAdminToken);
  ASSERT_EQ(list.status, 200);
  EXPECT_GE(list.body["total"].get<size_t>(), acked.size());
  for (const auto& d : list.body["documents"]) {
    const std::string source = d["source"];
    const std::string n = source.substr(7, source.size() - 7 - 3);  // "report-N.md"
    const std::string token = "tok" + std::to_string(100000 + std::stoi(n)) + "x";
    HttpResp q = Call(*c, "POST", "/api/v1/projects/crash/query", kE2eAdminToken,
                      json{{"query", token}, {"mode", "keyword"}, {"top_k", 100}}.dump());
    ASSERT_EQ(q.status, 200);
    int chunks = 0;
    for (const auto& h : q.body["results"]) chunks += h["document_id"] == d["id"];
    EXPECT_EQ(chunks, d["chunk_count"].get<int>()) << "document " << d["id"] << " half-visible";
    EXPECT_GE(chunks, 2);
  }
  server.Stop(SIGTERM);
}

}  // namespace
}  // namespace kb::testing
