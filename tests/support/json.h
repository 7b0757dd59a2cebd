// SPDX-License-Identifier: MIT
// A small strict JSON parser (RFC 8259) for tests that check the JSON cpuhp
// writes (trace files, torture summaries, host reports) by structure rather
// than by searching for substrings.
#pragma once

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cpuhp::testing_support {

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  // Not std::pair<std::string, Json>: clang with libstdc++ 12 refuses a pair
  // of an incomplete type here; a member type defined below is fine.
  struct Member;
  std::vector<Member> object;

  const Json* get(std::string_view key) const;
  std::string str(std::string_view key) const {
    const Json* v = get(key);
    return v != nullptr && v->kind == kString ? v->string : std::string();
  }
  double num(std::string_view key, double fallback = NAN) const {
    const Json* v = get(key);
    return v != nullptr && v->kind == kNumber ? v->number : fallback;
  }
};

struct Json::Member {
  std::string key;
  Json value;
};

inline const Json* Json::get(std::string_view key) const {
  if (kind != kObject) return nullptr;
  for (const Member& m : object)
    if (m.key == key) return &m.value;
  return nullptr;
}

class JsonParser {
 public:
  // True if `text` is exactly one JSON value (surrounding whitespace allowed).
  static bool parse(std::string_view text, Json& out, std::string& error) {
    JsonParser p(text);
    if (!p.value(out, 0)) {
      error = p.error_ + " at offset " + std::to_string(p.pos_);
      return false;
    }
    p.ws();
    if (p.pos_ != text.size()) {
      error = "trailing characters at offset " + std::to_string(p.pos_);
      return false;
    }
    return true;
  }

 private:
  explicit JsonParser(std::string_view t) : t_(t) {}
  bool fail(const char* why) {
    error_ = why;
    return false;
  }
  void ws() {
    while (pos_ < t_.size() &&
           (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r'))
      ++pos_;
  }
  bool literal(std::string_view word) {
    if (t_.substr(pos_, word.size()) != word) return fail("bad literal");
    pos_ += word.size();
    return true;
  }
  bool value(Json& out, int depth) {
    if (depth > 64) return fail("nested too deeply");
    ws();
    if (pos_ >= t_.size()) return fail("unexpected end");
    const char c = t_[pos_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      out.kind = Json::kString;
      return string(out.string);
    }
    if (c == 't') {
      out.kind = Json::kBool;
      out.boolean = true;
      return literal("true");
    }
    if (c == 'f') {
      out.kind = Json::kBool;
      return literal("false");
    }
    if (c == 'n') return literal("null");
    return number(out);
  }
  bool object(Json& out, int depth) {
    out.kind = Json::kObject;
    ++pos_;
    ws();
    if (pos_ < t_.size() && t_[pos_] == '}') {
      ++pos_;
      return true;
    }
    for (;;) {
      ws();
      std::string key;
      if (pos_ >= t_.size() || t_[pos_] != '"') return fail("expected a key");
      if (!string(key)) return false;
      ws();
      if (pos_ >= t_.size() || t_[pos_] != ':') return fail("expected ':'");
      ++pos_;
      Json v;
      if (!value(v, depth + 1)) return false;
      out.object.push_back(Json::Member{std::move(key), std::move(v)});
      ws();
      if (pos_ < t_.size() && t_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < t_.size() && t_[pos_] == '}') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or '}'");
    }
  }
  bool array(Json& out, int depth) {
    out.kind = Json::kArray;
    ++pos_;
    ws();
    if (pos_ < t_.size() && t_[pos_] == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      Json v;
      if (!value(v, depth + 1)) return false;
      out.array.push_back(std::move(v));
      ws();
      if (pos_ < t_.size() && t_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < t_.size() && t_[pos_] == ']') {
        ++pos_;
        return true;
      }
      return fail("expected ',' or ']'");
    }
  }
  static int hex(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }
  bool string(std::string& out) {
    ++pos_;  // opening quote
    while (pos_ < t_.size()) {
      const auto c = static_cast<unsigned char>(t_[pos_++]);
      if (c == '"') return true;
      if (c < 0x20) return fail("control character in a string");
      if (c != '\\') {
        out += static_cast<char>(c);
        continue;
      }
      if (pos_ >= t_.size()) break;
      const char e = t_[pos_++];
      switch (e) {
        case '"':
        case '\\':
        case '/':
          out += e;
          break;
        case 'b':
          out += '\b';
          break;
        case 'f':
          out += '\f';
          break;
        case 'n':
          out += '\n';
          break;
        case 'r':
          out += '\r';
          break;
        case 't':
          out += '\t';
          break;
        case 'u': {
          if (pos_ + 4 > t_.size()) return fail("short \\u escape");
          unsigned cp = 0;
          for (int i = 0; i < 4; ++i) {
            const int h = hex(t_[pos_++]);
            if (h < 0) return fail("bad \\u escape");
            cp = cp * 16 + static_cast<unsigned>(h);
          }
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else {
            out += '?';  // enough for these tests
          }
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }
  bool number(Json& out) {
    const std::size_t start = pos_;
    auto digit = [&] { return pos_ < t_.size() && t_[pos_] >= '0' && t_[pos_] <= '9'; };
    if (pos_ < t_.size() && t_[pos_] == '-') ++pos_;
    if (!digit()) return fail("expected a value");
    if (t_[pos_] == '0') {
      ++pos_;
    } else {
      while (digit()) ++pos_;
    }
    if (pos_ < t_.size() && t_[pos_] == '.') {
      ++pos_;
      if (!digit()) return fail("expected a digit after '.'");
      while (digit()) ++pos_;
    }
    if (pos_ < t_.size() && (t_[pos_] == 'e' || t_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < t_.size() && (t_[pos_] == '+' || t_[pos_] == '-')) ++pos_;
      if (!digit()) return fail("expected an exponent");
      while (digit()) ++pos_;
    }
    out.kind = Json::kNumber;
    out.number =
        std::strtod(std::string(t_.substr(start, pos_ - start)).c_str(), nullptr);
    return true;
  }

  std::string_view t_;
  std::size_t pos_ = 0;
  std::string error_;
};

}  // namespace cpuhp::testing_support
