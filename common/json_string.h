// Strings as JSON string literals, for the files and answers Selene writes as JSON by hand
// (run artifacts, REST answers). Standard library only: the engine-only build uses it too.
#pragma once

#include <string>
#include <string_view>

namespace selene {

// `text` as a JSON string literal, quotes included: '"' and '\' escaped, control characters as
// \n, \t, ... or \u00XX. Bytes that are not valid UTF-8 become U+FFFD, so the result always
// parses (an error message may echo what a client sent).
std::string JsonString(std::string_view text);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past
// U+10FFFF), i.e. whether JsonString keeps it unchanged.
bool IsValidUtf8(std::string_view text);

}  // namespace selene
