// Bounds on request-supplied text (job ids, model names, aliases, artifact names, request ids)
// echoed back in error messages. A client can send a 100 KB id; echoed whole, it comes back in
// the grpc-message trailer, which exceeds the client's metadata limit and turns a plain
// NOT_FOUND into RESOURCE_EXHAUSTED. Full build only (Abseil).
#pragma once

#include <cstddef>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace selene {

// Enough for every id the server issues ("job-123456") and any sane name.
inline constexpr size_t kMaxEchoedBytes = 64;

// `text` unchanged when it has at most `max` bytes; else its first `max` bytes (never ending
// inside a UTF-8 sequence) and "... (N bytes)" with the full length, so the reader still sees
// what was sent and that it was cut.
inline std::string ForMessage(absl::string_view text, size_t max = kMaxEchoedBytes) {
  if (text.size() <= max) return std::string(text);
  size_t cut = max;
  // Back up over UTF-8 continuation bytes (10xxxxxx) so the cut starts no broken character.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(text.substr(0, cut), "... (", text.size(), " bytes)");
}

}  // namespace selene
