// Tests of the `cpuhp` command-line tool, run as a separate process: every
// subcommand runs (short durations), torture's JSON has the promised fields
// and exits 0, a deliberately broken configuration (--break-grace-period)
// makes torture report violations and exit 1, the watchdog turns a stall into
// exit 3, trace writes Chrome trace-event JSON, and bad options exit 2.
// The tool is found next to this binary's build folder (build/tests/.. ->
// build/tools/cpuhp); without it (CPUHP_BUILD_TOOLS=OFF) the tests skip.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

// ------------------------------------------------------------ a strict JSON parser

struct Json {
  enum Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<Json> array;
  std::vector<std::pair<std::string, Json>> object;

  const Json* get(std::string_view key) const {
    if (kind != kObject) return nullptr;
    for (const auto& [k, v] : object)
      if (k == key) return &v;
    return nullptr;
  }
  std::string str(std::string_view key) const {
    const Json* v = get(key);
    return v != nullptr && v->kind == kString ? v->string : std::string();
  }
  double num(std::string_view key, double fallback = NAN) const {
    const Json* v = get(key);
    return v != nullptr && v->kind == kNumber ? v->number : fallback;
  }
};

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
      out.object.emplace_back(std::move(key), std::move(v));
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

// ------------------------------------------------------------ running the tool

std::filesystem::path tool_path() {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return {};
  return self.parent_path().parent_path() / "tools" / "cpuhp";
}

struct ToolRun {
  int status = -1;  // exit status, or 128 + signal
  std::string out, err;
  double seconds = 0;
};

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Runs `cpuhp <args>`; stdout is captured, stderr goes to a file.
ToolRun run_tool(const std::string& args) {
  ToolRun r;
  const auto err_path = std::filesystem::path(testing::TempDir()) /
                        ("cpuhp_tool_test_" + std::to_string(::getpid()) + ".err");
  const std::string cmd =
      "'" + tool_path().string() + "' " + args + " 2>'" + err_path.string() + "'";
  const auto t0 = std::chrono::steady_clock::now();
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.out.append(buf, n);
  const int st = ::pclose(p);
  r.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (WIFEXITED(st)) {
    r.status = WEXITSTATUS(st);
  } else if (WIFSIGNALED(st)) {
    r.status = 128 + WTERMSIG(st);
  }
  r.err = read_file(err_path);
  std::filesystem::remove(err_path);
  return r;
}

std::string describe(const ToolRun& r) {
  return "exit status " + std::to_string(r.status) + "\n--- stdout:\n" + r.out +
         "\n--- stderr:\n" + r.err;
}

class ToolTest : public testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(tool_path()))
      GTEST_SKIP() << "the cpuhp tool is not built (" << tool_path()
                   << "); configure with CPUHP_BUILD_TOOLS=ON";
  }
};

Json parse_or_fail(const std::string& text) {
  Json doc;
  std::string error;
  EXPECT_TRUE(JsonParser::parse(text, doc, error)) << error << "\n" << text;
  return doc;
}

// ------------------------------------------------------------ demo, states

TEST_F(ToolTest, DemoRunsForOneSecondAndExitsZero) {
  const ToolRun r = run_tool("demo --seconds 1");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.out.find("cpuhp demo report"), std::string::npos) << describe(r);
  EXPECT_EQ(r.out.find("VIOLATED"), std::string::npos) << describe(r);
}

TEST_F(ToolTest, StatesListsTheStateTable) {
  const ToolRun r = run_tool("states");
  EXPECT_EQ(r.status, 0) << describe(r);
  for (const char* name : {"offline", "bringup", "active", "demo:counter"})
    EXPECT_NE(r.out.find(name), std::string::npos) << name << "\n" << describe(r);
  const ToolRun one = run_tool("states --cpu 0");
  EXPECT_EQ(one.status, 0) << describe(one);
  EXPECT_NE(one.out.find("cpu0"), std::string::npos) << describe(one);
}

TEST_F(ToolTest, StatesOfACpuOutOfRangeFails) {
  const ToolRun r = run_tool("states --cpu 999");
  EXPECT_NE(r.status, 0) << describe(r);
  EXPECT_NE(r.err.find("999"), std::string::npos) << describe(r);
}

// ------------------------------------------------------------ torture

TEST_F(ToolTest, TortureJsonHasTheFieldsAndEveryCheckHolds) {
  const ToolRun r = run_tool("torture --seconds 1 --json");
  ASSERT_EQ(r.status, 0) << describe(r);
  const Json doc = parse_or_fail(r.out);
  ASSERT_EQ(doc.kind, Json::kObject) << r.out;
  for (const char* key : {"transitions", "rollbacks", "injected_failures", "reader_ops",
                          "violations", "attempts", "refused", "injections"}) {
    const Json* v = doc.get(key);
    ASSERT_NE(v, nullptr) << key << " missing\n" << r.out;
    EXPECT_EQ(v->kind, Json::kNumber) << key;
    EXPECT_GE(v->number, 0) << key;
  }
  const Json* lat = doc.get("latency_us");
  ASSERT_NE(lat, nullptr) << r.out;
  for (const char* key : {"p50", "p99", "max"}) {
    ASSERT_NE(lat->get(key), nullptr) << key;
    EXPECT_GE(lat->num(key), 0) << key;
  }
  EXPECT_LE(lat->num("p50"), lat->num("p99"));
  EXPECT_LE(lat->num("p99"), lat->num("max"));
  EXPECT_EQ(doc.num("violations"), 0) << r.out;
  EXPECT_GT(doc.num("transitions"), 0) << r.out;
  EXPECT_GT(doc.num("reader_ops"), 0) << r.out;
  // torture_onoff's accounting, as the JSON reports it.
  EXPECT_EQ(doc.num("attempts"), doc.num("transitions") + doc.num("injected_failures") +
                                     doc.num("refused") + doc.num("other_failures"))
      << r.out;
  EXPECT_EQ(doc.num("injected_failures"), doc.num("injections")) << r.out;
  ASSERT_NE(doc.get("ok"), nullptr);
  EXPECT_TRUE(doc.get("ok")->boolean);
}

TEST_F(ToolTest, TortureReportSaysEveryCheckHeld) {
  const ToolRun r =
      run_tool("torture --seconds 1 --cpus 8 --online 4 --churn 2 --seed 7");
  EXPECT_EQ(r.status, 0) << describe(r);
  EXPECT_NE(r.out.find("held"), std::string::npos) << describe(r);
  EXPECT_EQ(r.out.find("VIOLATED"), std::string::npos) << describe(r);
}

// The checks can fail: freeing the per-CPU data before the online bit clears
// (no grace period) must be caught by the RCU readers and reported.
TEST_F(ToolTest, TortureCatchesABrokenGracePeriod) {
  ToolRun r;
  Json doc;
  // Catching it needs a reader to hold a CPU's data while it is freed: a
  // storm without pauses on 4 CPUs gives thousands of chances per second
  // (thousands of violations in practice, also under TSan); a slow, loaded
  // machine gets a second go.
  for (int attempt = 0; attempt < 2; ++attempt) {
    r = run_tool(
        "torture --seconds 2 --cpus 4 --churn 0 --lock-readers 0 --interval-us 0 "
        "--failure-rate 0 --break-grace-period --json --seed " +
        std::to_string(attempt + 1));
    if (r.status != 0) break;
  }
  ASSERT_EQ(r.status, 1) << describe(r);
  doc = parse_or_fail(r.out);
  EXPECT_GT(doc.num("violations"), 0) << r.out;
  ASSERT_NE(doc.get("checks"), nullptr) << r.out;
  EXPECT_GT(doc.get("checks")->num("rcu_reader"), 0) << r.out;
  ASSERT_NE(doc.get("ok"), nullptr);
  EXPECT_FALSE(doc.get("ok")->boolean);
  EXPECT_NE(r.err.find("rcu_reader"), std::string::npos) << describe(r);
}

TEST_F(ToolTest, TortureWatchdogTurnsAStallIntoADumpAndExitThree) {
  const ToolRun r = run_tool("torture --seconds 60 --stall-seconds 1 --inject-stall");
  EXPECT_EQ(r.status, 3) << describe(r);
  EXPECT_LT(r.seconds, 30) << describe(r);
  EXPECT_NE(r.err.find("STALL"), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("onoff"), std::string::npos) << describe(r);
  EXPECT_NE(r.err.find("online"), std::string::npos) << describe(r);
}

// ------------------------------------------------------------ trace

TEST_F(ToolTest, TraceWritesChromeTraceJson) {
  const auto path = std::filesystem::path(testing::TempDir()) /
                    ("cpuhp_tool_test_" + std::to_string(::getpid()) + ".json");
  const ToolRun r = run_tool("trace --transitions 100 --failure-rate 0.3 --out '" +
                             path.string() + "'");
  ASSERT_EQ(r.status, 0) << describe(r);
  const Json doc = parse_or_fail(read_file(path));
  std::filesystem::remove(path);
  const Json* events = doc.get("traceEvents");
  ASSERT_TRUE(events != nullptr && events->kind == Json::kArray);
  std::set<std::string> tracks, cats;
  bool cpu_slices = false, writer_slices = false;
  for (const Json& e : events->array) {
    if (e.str("ph") == "M" && e.str("name") == "thread_name")
      tracks.insert(e.get("args")->str("name"));
    if (e.str("ph") == "X") {
      EXPECT_GE(e.num("ts"), 0);
      EXPECT_GE(e.num("dur"), 0);
      (e.num("tid") == 0 ? writer_slices : cpu_slices) = true;
    }
    if (!e.str("cat").empty()) cats.insert(e.str("ph") + ":" + e.str("cat"));
  }
  EXPECT_TRUE(cpu_slices && writer_slices);
  EXPECT_TRUE(tracks.count("writers") == 1 && tracks.count("CPU 0") == 1);
  for (const char* c :
       {"X:startup", "X:teardown", "X:operation", "i:failure", "i:rollback"})
    EXPECT_EQ(cats.count(c), 1u) << c;
}

TEST_F(ToolTest, TraceMinimalScenario) {
  const auto path = std::filesystem::path(testing::TempDir()) /
                    ("cpuhp_tool_test_min_" + std::to_string(::getpid()) + ".json");
  const ToolRun r = run_tool(
      "trace --scenario minimal --cpus 4 --online 2 --transitions 10 "
      "--out '" +
      path.string() + "'");
  ASSERT_EQ(r.status, 0) << describe(r);
  const Json doc = parse_or_fail(read_file(path));
  std::filesystem::remove(path);
  ASSERT_NE(doc.get("traceEvents"), nullptr);
  EXPECT_FALSE(doc.get("traceEvents")->array.empty());
}

TEST_F(ToolTest, TraceToAnUnwritableFileFails) {
  const ToolRun r = run_tool("trace --transitions 1 --out /nonexistent-dir/x.json");
  EXPECT_EQ(r.status, 1) << describe(r);
  EXPECT_NE(r.err.find("/nonexistent-dir/x.json"), std::string::npos) << describe(r);
}

// ------------------------------------------------------------ usage errors

TEST_F(ToolTest, BadOptionsAreUsageErrorsWithStatusTwo) {
  for (const char* args :
       {"", "bogus", "torture --bogus", "torture --cpus 1", "torture --failure-rate 2",
        "torture --seconds x", "torture --cpus 4 --online 5", "torture --churn 99",
        "trace", "trace --out x.json --scenario nope", "trace --out x.json --cpus 0",
        "trace --out x.json --cpus 4 --online 9", "demo --seconds 0",
        "states --cpu -1"}) {
    const ToolRun r = run_tool(args);
    EXPECT_EQ(r.status, 2) << "cpuhp " << args << "\n" << describe(r);
    EXPECT_FALSE(r.err.empty()) << "cpuhp " << args << ": no message on stderr";
  }
}

TEST_F(ToolTest, HelpExitsZero) {
  for (const char* args : {"--help", "torture --help", "trace --help"}) {
    const ToolRun r = run_tool(args);
    EXPECT_EQ(r.status, 0) << "cpuhp " << args << "\n" << describe(r);
  }
  const ToolRun r = run_tool("torture --help");
  EXPECT_NE(r.out.find("--failure-rate"), std::string::npos);
  EXPECT_EQ(r.out.find("--break-grace-period"), std::string::npos)
      << "test-only knob shown";
}

}  // namespace
