// ValidateQuery: the one check of a query's limits that the HTTP decoders, the CLI and the
// service share (search/query.h).
#include "search/query.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace kb {
namespace {

QueryRequest Text(const std::string& text) {
  QueryRequest q;
  q.text = text;
  return q;
}

TEST(ValidateQueryTest, PagingMessagesNameTheFieldAsTheCallerDoes) {
  EXPECT_EQ(ValidateTopK(0, "field").message(), "field 'top_k' must be between 1 and 100");
  EXPECT_EQ(ValidateTopK(kMaxTopK + 1, "parameter").message(),
            "parameter 'top_k' must be between 1 and 100");
  EXPECT_EQ(ValidateTopK(0).message(), "'top_k' must be between 1 and 100");
  EXPECT_EQ(ValidateOffset(-1, "field").message(), "field 'offset' must be between 0 and 10000");
  EXPECT_TRUE(ValidateTopK(1).ok());
  EXPECT_TRUE(ValidateTopK(kMaxTopK).ok());
}

TEST(ValidateQueryTest, OffsetIsBoundedAboveByTheDeepestPage) {
  QueryRequest q = Text("danube");
  q.offset = kMaxQueryOffset;
  EXPECT_TRUE(ValidateQuery(q).ok());
  q.offset = kMaxQueryOffset + 1;
  Status s = ValidateQuery(q);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.message(), "'offset' must be between 0 and 10000");
  q.offset = -1;
  EXPECT_FALSE(ValidateQuery(q).ok());
}

TEST(ValidateQueryTest, BlankTextCountsAsNoTextUnlessThereIsAVector) {
  EXPECT_EQ(ValidateQuery(Text("")).message(),
            "the query is empty: give 'query' text or a 'vector'");
  EXPECT_EQ(ValidateQuery(Text(" \t\n")).message(),
            "the query is empty: give 'query' text or a 'vector'");
  QueryRequest q = Text("  ");
  q.vector = {0.5f, 0.5f};
  EXPECT_TRUE(ValidateQuery(q).ok());
  q.mode = SearchMode::kKeyword;
  EXPECT_EQ(ValidateQuery(q).message(), "keyword search needs query text");
}

TEST(ValidateQueryTest, TextMustBeShortValidUtf8AndAlphaAFraction) {
  EXPECT_NE(ValidateQuery(Text(std::string(kMaxQueryBytes + 1, 'a'))).message().find("longer"),
            std::string::npos);
  EXPECT_TRUE(ValidateQuery(Text(std::string(kMaxQueryBytes, 'a'))).ok());
  EXPECT_EQ(ValidateQuery(Text("\xc3\x28")).message(), "the query is not valid UTF-8");
  QueryRequest q = Text("x");
  q.alpha = 1.5;
  EXPECT_EQ(ValidateQuery(q).message(), "'alpha' must be between 0 and 1");
  q.alpha = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(ValidateQuery(q).ok());
}

}  // namespace
}  // namespace kb
