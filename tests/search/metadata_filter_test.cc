#include "search/metadata_filter.h"

#include <gtest/gtest.h>

namespace kb {
namespace {

TEST(MetadataFilterTest, EmptyFilterAcceptsEverything) {
  auto f = MetadataFilter::Parse("").value();
  EXPECT_TRUE(f->empty());
  EXPECT_TRUE(f->Matches("{}"));
}

TEST(MetadataFilterTest, EqualityOnEveryKeyIsRequired) {
  auto f = MetadataFilter::Parse(R"({"team":"search","year":2026})").value();
  EXPECT_TRUE(f->Matches(R"({"team":"search","year":2026,"x":1})"));
  EXPECT_TRUE(f->Matches(R"({"team":"search","year":2026.0})"));
  EXPECT_FALSE(f->Matches(R"({"team":"search"})"));
  EXPECT_FALSE(f->Matches(R"({"team":"ops","year":2026})"));
  EXPECT_FALSE(f->Matches(R"({"team":"search","year":"2026"})"));
  EXPECT_FALSE(f->Matches("not json"));
}

TEST(MetadataFilterTest, InMatchesAnyListedValue) {
  auto f = MetadataFilter::Parse(R"({"lang":{"$in":["en","de"]}})").value();
  EXPECT_TRUE(f->Matches(R"({"lang":"de"})"));
  EXPECT_FALSE(f->Matches(R"({"lang":"fr"})"));
}

TEST(MetadataFilterTest, MalformedFiltersNameTheKey) {
  EXPECT_EQ(MetadataFilter::Parse("[1]").status().code(), Code::kInvalidArgument);
  auto s = MetadataFilter::Parse(R"({"tags":["a"]})").status();
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("tags"), std::string::npos);
  EXPECT_FALSE(MetadataFilter::Parse(R"({"a":{"$gt":1}})").ok());
  EXPECT_FALSE(MetadataFilter::Parse(R"({"a":{"$in":[{"b":1}]}})").ok());
}

}  // namespace
}  // namespace kb
