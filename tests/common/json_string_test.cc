// Tests common/json_string.h: escapes, control characters, and that bytes which are not UTF-8
// become U+FFFD so the literal always parses, while valid multi-byte text passes unchanged.
#include "common/json_string.h"

#include <gtest/gtest.h>

#include <string>

namespace selene {
namespace {

TEST(JsonStringTest, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString("plain"), "\"plain\"");
  EXPECT_EQ(JsonString("say \"hi\"\\now"), "\"say \\\"hi\\\"\\\\now\"");
  EXPECT_EQ(JsonString("a\nb\tc\rd"), "\"a\\nb\\tc\\rd\"");
  EXPECT_EQ(JsonString(std::string("\x01\x7f", 2)), "\"\\u0001\\u007f\"");
  EXPECT_EQ(JsonString(std::string("\0", 1)), "\"\\u0000\"");
}

TEST(JsonStringTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  const std::string valid = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x8C\x99";  // é, €, 🌙
  EXPECT_TRUE(IsValidUtf8(valid));
  EXPECT_EQ(JsonString(valid), "\"" + valid + "\"");
  for (const std::string& invalid : {std::string("\xFF"), std::string("\xC3"),  // stray, truncated
                                     std::string("\xC0\xAF"),                   // overlong
                                     std::string("\xED\xA0\x80"),               // surrogate
                                     std::string("\xF4\x90\x80\x80")}) {        // past U+10FFFF
    EXPECT_FALSE(IsValidUtf8(invalid)) << JsonString(invalid);
    EXPECT_NE(JsonString("x" + invalid).find("\xEF\xBF\xBD"), std::string::npos);
  }
}

}  // namespace
}  // namespace selene
