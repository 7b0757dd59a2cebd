// JSON string literals, for the library's and the tool's JSON output (trace
// files, host change reports, torture summaries).
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace cpuhp::detail {

// `s` as a JSON string literal, quotes included. Control characters are
// escaped; other bytes (UTF-8 included) pass through unchanged.
inline std::string json_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  out += '"';
  return out;
}

}  // namespace cpuhp::detail
