#include "common/text_util.h"

#include <gtest/gtest.h>

namespace kb {
namespace {

TEST(TextUtilTest, Utf8ValidationRejectsOverlongsSurrogatesAndTruncation) {
  EXPECT_TRUE(IsValidUtf8("plain"));
  EXPECT_TRUE(IsValidUtf8("caf\xC3\xA9 \xF0\x9F\x98\x80"));
  EXPECT_FALSE(IsValidUtf8("\xC0\xAF"));          // overlong '/'
  EXPECT_FALSE(IsValidUtf8("\xED\xA0\x80"));      // surrogate
  EXPECT_FALSE(IsValidUtf8("\xF0\x9F\x98"));      // truncated
  EXPECT_FALSE(IsValidUtf8("\xF4\x90\x80\x80"));  // > U+10FFFF
}

TEST(TextUtilTest, SanitizeReplacesEachBadByte) {
  EXPECT_EQ(SanitizeUtf8("a\xFF" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_TRUE(IsValidUtf8(SanitizeUtf8("\xC0\xAF\xED\xA0\x80")));
}

TEST(TextUtilTest, ProjectNamesFollowTheDocumentedRule) {
  EXPECT_TRUE(ValidateProjectName("Team docs_2-a").ok());
  EXPECT_TRUE(ValidateProjectName(std::string(100, 'a')).ok());
  EXPECT_FALSE(ValidateProjectName("").ok());
  EXPECT_FALSE(ValidateProjectName(std::string(101, 'a')).ok());
  EXPECT_FALSE(ValidateProjectName("a/b").ok());
  EXPECT_FALSE(ValidateProjectName("..").ok());
  EXPECT_FALSE(ValidateProjectName("tab\there").ok());
  EXPECT_FALSE(ValidateProjectName("   ").ok());
  EXPECT_FALSE(ValidateProjectName("x'; DROP TABLE projects;--").ok());
}

TEST(TextUtilTest, LabelsRefuseControlCharactersAndBadUtf8) {
  EXPECT_TRUE(ValidateLabel("title", "A title\twith tab", 100).ok());
  EXPECT_FALSE(ValidateLabel("title", "line\nbreak", 100).ok());
  EXPECT_FALSE(ValidateLabel("title", "\xFF", 100).ok());
  Status s = ValidateLabel("title", std::string(101, 'a'), 100);
  EXPECT_NE(s.message().find("title"), std::string::npos);
}

}  // namespace
}  // namespace kb
