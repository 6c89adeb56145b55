// HttpEmbedder against a real HTTP server on a loopback port, scripted per test: batching,
// retries, fail-fast errors, dimension checks, timeouts and out-of-order responses.
#include "embed/http_embedder.h"

#include <gtest/gtest.h>
#include <httplib.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <functional>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

namespace kb {
namespace {

using json = nlohmann::json;
constexpr int kDim = 4;

// The vector the fake server returns for a text (not unit length: the client normalises).
std::vector<float> FakeVector(const std::string& text) {
  std::vector<float> v(kDim, 0.5f);
  v[text.size() % kDim] = 3.0f;
  return v;
}

class HttpEmbedderTest : public ::testing::Test {
 protected:
  // Decides the response to the n-th request (0-based) given the parsed request body.
  using Script = std::function<void(int n, const json& req, httplib::Response& res)>;

  void SetUp() override {
    server_.Post("/v1/embeddings", [this](const httplib::Request& req, httplib::Response& res) {
      int n = requests_.fetch_add(1);
      {
        std::lock_guard lock(mu_);
        last_auth_ = req.get_header_value("Authorization");
      }
      Script script;
      {
        std::lock_guard lock(mu_);
        script = script_;
      }
      script(n, json::parse(req.body), res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    ASSERT_GT(port_, 0);
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 200 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    SetScript(Echo());
  }

  void TearDown() override {
    server_.stop();
    if (thread_.joinable()) thread_.join();
  }

  // A well-behaved server; `reverse` lists the items last-first (the "index" fields still say
  // which input each belongs to).
  static Script Echo(int dim = kDim, bool reverse = false) {
    return [dim, reverse](int, const json& req, httplib::Response& res) {
      json data = json::array();
      const auto& input = req.at("input");
      for (size_t i = 0; i < input.size(); ++i) {
        auto v = FakeVector(input[i].get<std::string>());
        v.resize(static_cast<size_t>(dim), 0.5f);
        data.push_back({{"object", "embedding"}, {"index", i}, {"embedding", v}});
      }
      if (reverse) {
        json rev = json::array();
        for (size_t i = data.size(); i-- > 0;) rev.push_back(data[i]);
        data = rev;
      }
      res.set_content(json{{"object", "list"}, {"data", data}, {"model", req.at("model")}}.dump(),
                      "application/json");
    };
  }

  void SetScript(Script s) {
    std::lock_guard lock(mu_);
    script_ = std::move(s);
  }

  EmbedderSpec Spec() const {
    EmbedderSpec s;
    s.kind = "openai";
    s.model = "test-model";
    s.url = "http://127.0.0.1:" + std::to_string(port_);
    s.dimension = kDim;
    s.timeout_ms = 2000;
    s.max_retries = 3;
    s.batch_size = 64;
    return s;
  }

  static HttpEmbedderTuning FastBackoff() {
    HttpEmbedderTuning t;
    t.initial_backoff_ms = 5;
    t.max_backoff_ms = 50;
    return t;
  }

  static void ExpectEmbeds(const std::vector<std::string>& texts,
                           const std::vector<Vector>& vectors) {
    ASSERT_EQ(texts.size(), vectors.size());
    for (size_t i = 0; i < texts.size(); ++i) {
      Vector expected = FakeVector(texts[i]);
      ASSERT_TRUE(NormalizeL2(&expected));
      ASSERT_EQ(vectors[i].size(), expected.size());
      for (size_t j = 0; j < expected.size(); ++j) {
        EXPECT_NEAR(vectors[i][j], expected[j], 1e-6) << "text " << i;
      }
    }
  }

  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::mutex mu_;
  Script script_;
  std::string last_auth_;
};

TEST_F(HttpEmbedderTest, EmbedsAndNormalises) {
  HttpEmbedder e(Spec(), FastBackoff());
  std::vector<std::string> texts = {"a", "bb", "ccc"};
  auto r = e.Embed(texts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectEmbeds(texts, *r);
  EXPECT_EQ(requests_.load(), 1);
  EXPECT_EQ(e.Name(), "openai:test-model");
  EXPECT_TRUE(e.Embed({}).ok());
}

TEST_F(HttpEmbedderTest, SplitsIntoBatches) {
  EmbedderSpec s = Spec();
  s.batch_size = 3;
  HttpEmbedder e(s, FastBackoff());
  std::vector<std::string> texts;
  for (int i = 0; i < 10; ++i) texts.push_back(std::string(static_cast<size_t>(i + 1), 'x'));
  auto r = e.Embed(texts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectEmbeds(texts, *r);
  EXPECT_EQ(requests_.load(), 4);
}

TEST_F(HttpEmbedderTest, OrdersResultsByIndexField) {
  SetScript(Echo(kDim, /*reverse=*/true));
  HttpEmbedder e(Spec(), FastBackoff());
  std::vector<std::string> texts = {"a", "bb", "ccc", "dddd", "eeeee"};
  auto r = e.Embed(texts);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ExpectEmbeds(texts, *r);
}

TEST_F(HttpEmbedderTest, RetriesAfter503ThenSucceeds) {
  Script echo = Echo();
  SetScript([echo](int n, const json& req, httplib::Response& res) {
    if (n < 2) {
      res.status = 503;
      res.set_content(R"({"error":{"message":"loading model"}})", "application/json");
      return;
    }
    echo(n, req, res);
  });
  HttpEmbedder e(Spec(), FastBackoff());
  auto r = e.Embed({"hello"});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(requests_.load(), 3);
}

TEST_F(HttpEmbedderTest, GivesUpAfterMaxRetries) {
  SetScript([](int, const json&, httplib::Response& res) {
    res.status = 429;
    res.set_content(R"({"error":{"message":"slow down"}})", "application/json");
  });
  EmbedderSpec s = Spec();
  s.max_retries = 2;
  HttpEmbedder e(s, FastBackoff());
  auto r = e.Embed({"hello"});
  EXPECT_EQ(r.status().code(), Code::kResourceExhausted);
  EXPECT_NE(r.status().message().find("slow down"), std::string::npos);
  EXPECT_EQ(requests_.load(), 3);
}

TEST_F(HttpEmbedderTest, DoesNotRetryOn400AndReportsServerMessage) {
  SetScript([](int, const json&, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"error":{"message":"model 'test-model' not found"}})",
                    "application/json");
  });
  HttpEmbedder e(Spec(), FastBackoff());
  auto r = e.Embed({"hello"});
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("model 'test-model' not found"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(requests_.load(), 1);
}

TEST_F(HttpEmbedderTest, WrongDimensionIsFailedPrecondition) {
  SetScript(Echo(kDim + 1));
  HttpEmbedder e(Spec(), FastBackoff());
  auto r = e.Embed({"hello"});
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("dimension"), std::string::npos);
  EXPECT_EQ(requests_.load(), 1);
}

TEST_F(HttpEmbedderTest, NonFiniteOrMalformedResponseIsIOError) {
  SetScript([](int, const json&, httplib::Response& res) {
    res.set_content(R"({"data":[{"index":0,"embedding":[0,0,0,0]}]})", "application/json");
  });
  HttpEmbedder e(Spec(), FastBackoff());
  EXPECT_EQ(e.Embed({"x"}).status().code(), Code::kIOError);
  SetScript([](int, const json&, httplib::Response& res) {
    res.set_content("<html>proxy error</html>", "text/html");
  });
  EXPECT_EQ(e.Embed({"x"}).status().code(), Code::kIOError);
}

TEST_F(HttpEmbedderTest, SlowServerTimesOut) {
  Script echo = Echo();
  SetScript([echo](int n, const json& req, httplib::Response& res) {
    std::this_thread::sleep_for(std::chrono::milliseconds(600));
    echo(n, req, res);
  });
  EmbedderSpec s = Spec();
  s.timeout_ms = 100;
  s.max_retries = 1;
  HttpEmbedder e(s, FastBackoff());
  auto start = std::chrono::steady_clock::now();
  auto r = e.Embed({"hello"});
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status().code(), Code::kUnavailable) << r.status().ToString();
  EXPECT_LT(elapsed, std::chrono::milliseconds(1000));
  EXPECT_EQ(requests_.load(), 2);  // timeouts are transient: retried once
}

TEST_F(HttpEmbedderTest, ConnectionRefusedIsUnavailableAfterRetries) {
  EmbedderSpec s = Spec();
  server_.stop();
  thread_.join();
  s.max_retries = 1;
  HttpEmbedder e(s, FastBackoff());
  EXPECT_EQ(e.Embed({"hello"}).status().code(), Code::kUnavailable);
}

TEST_F(HttpEmbedderTest, SendsBearerTokenFromNamedEnvVariable) {
  EmbedderSpec s = Spec();
  s.api_key_env = "KB_HTTP_EMBEDDER_TEST_KEY";
  HttpEmbedder e(s, FastBackoff());
  ::unsetenv("KB_HTTP_EMBEDDER_TEST_KEY");
  EXPECT_EQ(e.Embed({"x"}).status().code(), Code::kFailedPrecondition);
  EXPECT_EQ(requests_.load(), 0);
  ::setenv("KB_HTTP_EMBEDDER_TEST_KEY", "sekrit", 1);
  ASSERT_TRUE(e.Embed({"x"}).ok());
  std::lock_guard lock(mu_);
  EXPECT_EQ(last_auth_, "Bearer sekrit");
}

TEST_F(HttpEmbedderTest, FingerprintDependsOnModelAndDimensionNotUrl) {
  EmbedderSpec a = Spec();
  EmbedderSpec b = Spec();
  b.url = "https://elsewhere.example:8443/api";
  EXPECT_EQ(HttpEmbedder(a).Fingerprint(), HttpEmbedder(b).Fingerprint());
  b.model = "other";
  EXPECT_NE(HttpEmbedder(a).Fingerprint(), HttpEmbedder(b).Fingerprint());
  EmbedderSpec c = Spec();
  c.dimension = kDim + 1;
  EXPECT_NE(HttpEmbedder(a).Fingerprint(), HttpEmbedder(c).Fingerprint());
}

TEST_F(HttpEmbedderTest, BaseUrlEndingInV1IsNotDoubled) {
  EmbedderSpec s = Spec();
  s.url += "/v1/";
  HttpEmbedder e(s, FastBackoff());
  ASSERT_TRUE(e.Embed({"x"}).ok());
  EXPECT_EQ(requests_.load(), 1);
}

}  // namespace
}  // namespace kb
