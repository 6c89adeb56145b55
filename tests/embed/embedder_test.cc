// EmbedderSpec JSON round trip and validation, the factory, and the shared vector helpers.
#include "embed/embedder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace kb {
namespace {

TEST(EmbedderSpecTest, JsonRoundTripKeepsEveryField) {
  EmbedderSpec s;
  s.kind = "openai";
  s.dimension = 768;
  s.model = "nomic-embed-text";
  s.url = "http://127.0.0.1:11434";
  s.api_key_env = "KB_EMBED_KEY";
  s.timeout_ms = 1234;
  s.max_retries = 5;
  s.batch_size = 16;
  auto back = EmbedderSpec::FromJson(s.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->kind, s.kind);
  EXPECT_EQ(back->dimension, s.dimension);
  EXPECT_EQ(back->model, s.model);
  EXPECT_EQ(back->url, s.url);
  EXPECT_EQ(back->api_key_env, s.api_key_env);
  EXPECT_EQ(back->timeout_ms, s.timeout_ms);
  EXPECT_EQ(back->max_retries, s.max_retries);
  EXPECT_EQ(back->batch_size, s.batch_size);
}

TEST(EmbedderSpecTest, MissingFieldsTakeDefaults) {
  auto s = EmbedderSpec::FromJson("{}");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->kind, "builtin-hash");
  EXPECT_EQ(s->dimension, 384);
}

TEST(EmbedderSpecTest, FromJsonRejectsBadInputNamingTheField) {
  struct Case {
    const char* json;
    const char* field;
  } cases[] = {
      {R"({"dimension": "384"})", "dimension"},
      {R"({"dimension": 0})", "dimension"},
      {R"({"dimension": 5000})", "dimension"},
      {R"({"dimension": 1.5})", "dimension"},
      {R"({"dimension": 99999999999})", "dimension"},
      {R"({"kind": 3})", "kind"},
      {R"({"kind": "word2vec"})", "kind"},
      {R"({"timeout_ms": -1})", "timeout_ms"},
      {R"({"max_retries": 11})", "max_retries"},
      {R"({"batch_size": 0})", "batch_size"},
      {R"({"colour": "blue"})", "colour"},
      {R"({"kind": "openai", "url": "http://x"})", "model"},
      {R"({"kind": "openai", "model": "m", "url": "ftp://x"})", "url"},
  };
  for (const auto& c : cases) {
    auto s = EmbedderSpec::FromJson(c.json);
    ASSERT_FALSE(s.ok()) << c.json;
    EXPECT_EQ(s.status().code(), Code::kInvalidArgument) << c.json;
    EXPECT_NE(s.status().message().find(c.field), std::string::npos)
        << c.json << " -> " << s.status().message();
  }
  EXPECT_EQ(EmbedderSpec::FromJson("not json").status().code(), Code::kInvalidArgument);
  EXPECT_EQ(EmbedderSpec::FromJson("[1]").status().code(), Code::kInvalidArgument);
}

TEST(EmbedderFactoryTest, BuildsEachKind) {
  EmbedderSpec hash;
  auto h = MakeEmbedder(hash);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ((*h)->Name(), "builtin-hash");
  EXPECT_EQ((*h)->Dimension(), 384);

  EmbedderSpec http;
  http.kind = "openai";
  http.model = "m";
  http.url = "http://127.0.0.1:1";
  http.dimension = 8;
  auto o = MakeEmbedder(http);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ((*o)->Name(), "openai:m");
  EXPECT_NE((*o)->Fingerprint(), (*h)->Fingerprint());

  EmbedderSpec bad;
  bad.kind = "nope";
  EXPECT_EQ(MakeEmbedder(bad).status().code(), Code::kInvalidArgument);
}

TEST(EmbedderFactoryTest, ExternalEmbedderRefusesToEmbed) {
  EmbedderSpec s;
  s.kind = "external";
  s.dimension = 1024;
  auto e = MakeEmbedder(s);
  ASSERT_TRUE(e.ok());
  EXPECT_EQ((*e)->Dimension(), 1024);
  auto r = (*e)->Embed({"hello"});
  EXPECT_EQ(r.status().code(), Code::kFailedPrecondition);
  s.dimension = 4097;
  EXPECT_EQ(MakeEmbedder(s).status().code(), Code::kInvalidArgument);
}

TEST(VectorHelpersTest, NormalizeL2ScalesToUnitAndRefusesZeroOrNonFinite) {
  Vector v = {3, 4};
  ASSERT_TRUE(NormalizeL2(&v));
  EXPECT_FLOAT_EQ(v[0], 0.6f);
  EXPECT_FLOAT_EQ(v[1], 0.8f);
  Vector zero = {0, 0};
  EXPECT_FALSE(NormalizeL2(&zero));
  Vector inf = {1, std::numeric_limits<float>::infinity()};
  EXPECT_FALSE(NormalizeL2(&inf));
  EXPECT_FALSE(AllFinite(inf));
  EXPECT_FALSE(AllFinite({std::nanf("")}));
  EXPECT_TRUE(AllFinite({1, -2}));
}

}  // namespace
}  // namespace kb
