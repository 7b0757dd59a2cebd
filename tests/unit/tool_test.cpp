// Tests of the `cpuhp` command-line tool, run as a separate process: every
// subcommand runs (short durations), torture's JSON has the promised fields
// and exits 0, a deliberately broken configuration (--break-grace-period)
// makes torture report violations and exit 1, the watchdog turns a stall into
// exit 3, trace writes Chrome trace-event JSON, bad options exit 2 (NaN and
// +-inf included), and `host --follow` ends when its stdout's reader does.
// The tool is found next to this binary's build folder (build/tests/.. ->
// build/tools/cpuhp); without it (CPUHP_BUILD_TOOLS=OFF) the tests skip.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "support/json.h"
#include "support/waiting.h"

namespace {

using cpuhp::testing_support::eventually;
using cpuhp::testing_support::Json;
using cpuhp::testing_support::JsonParser;

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

// A `cpuhp <args>` left running: stdout into a pipe whose read end the test
// holds (and may close), stderr into a file. The destructor kills and reaps it
// if it is still running, so a hang becomes a failed assertion, not a hung
// test.
class RunningTool {
 public:
  // reader_closed: the read end is closed before the tool starts (no reader
  // at all, its first write fails).
  explicit RunningTool(const std::vector<std::string>& args, bool reader_closed = false)
      : err_path_(std::filesystem::path(testing::TempDir()) /
                  ("cpuhp_tool_test_running_" + std::to_string(::getpid()) + ".err")) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return;
    reader_ = fds[0];
    if (reader_closed) close_reader();
    const std::string exe = tool_path().string();
    std::vector<std::string> argv_store{exe};
    argv_store.insert(argv_store.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : argv_store) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_path_.c_str(),
                                     O_WRONLY | O_CREAT | O_TRUNC, 0600);
    // The tool's signal dispositions and mask are the defaults, whatever ours are.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    if (::posix_spawn(&pid_, exe.c_str(), &fa, &attr, argv.data(), environ) != 0)
      pid_ = -1;
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    ::close(fds[1]);
  }
  ~RunningTool() {
    if (pid_ > 0 && !status_) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      ::waitpid(pid_, &st, 0);
    }
    close_reader();
    std::filesystem::remove(err_path_);
  }
  RunningTool(const RunningTool&) = delete;
  RunningTool& operator=(const RunningTool&) = delete;

  bool started() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  // Reads stdout until it holds `lines` newlines (true), or EOF or 10 s
  // (false). Everything read so far is in out().
  bool read_lines(int lines) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::count(out_.begin(), out_.end(), '\n') < lines) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (reader_ < 0 || left.count() <= 0) return false;
      pollfd p{reader_, POLLIN, 0};
      const int r = ::poll(&p, 1, static_cast<int>(left.count()));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) return false;
      char buf[4096];
      const ssize_t n = ::read(reader_, buf, sizeof buf);
      if (n <= 0) return false;
      out_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  void close_reader() {
    if (reader_ >= 0) ::close(reader_);
    reader_ = -1;
  }

  // Its exit status (as ToolRun::status) once it has exited, or nullopt if it
  // is still running after eventually()'s limit.
  std::optional<int> wait_exit() {
    if (pid_ <= 0) return std::nullopt;
    if (!status_) {
      int st = 0;
      if (!eventually([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }))
        return std::nullopt;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    return status_;
  }

  const std::string& out() const { return out_; }
  std::string err() const { return read_file(err_path_); }
  std::string describe() const {
    return "--- stdout:\n" + out_ + "\n--- stderr:\n" + err();
  }

 private:
  std::filesystem::path err_path_;
  pid_t pid_ = -1;
  int reader_ = -1;
  std::string out_;
  std::optional<int> status_;
};

// A fake sysfs/procfs tree for `cpuhp host --root`: 4 CPUs, all online, no
// cgroups, affinity as given. Files are replaced atomically (rename).
class FakeHostTree {
 public:
  FakeHostTree()
      : root_(std::filesystem::path(testing::TempDir()) /
              ("cpuhp_tool_test_root_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(root_);
    for (const char* f : {"possible", "present", "online"})
      write("sys/devices/system/cpu/" + std::string(f), "0-3\n");
    affinity("0-3");
  }
  ~FakeHostTree() { std::filesystem::remove_all(root_); }
  FakeHostTree(const FakeHostTree&) = delete;
  FakeHostTree& operator=(const FakeHostTree&) = delete;

  std::string root() const { return root_.string(); }
  void affinity(const std::string& list) {
    write("proc/self/status", "Name:\tcpuhp\nCpus_allowed_list:\t" + list + "\n");
  }

 private:
  void write(const std::string& rel, const std::string& text) {
    const auto path = root_ / rel;
    std::filesystem::create_directories(path.parent_path());
    const auto tmp = path.parent_path() / (".tmp." + path.filename().string());
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, path);
  }
  std::filesystem::path root_;
};

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
        "trace --out x.json --cpus 4 --online 9", "demo --seconds 0", "states --cpu -1",
        "states --cpu nan", "states --cpu inf", "host --recheck-ms nan",
        "host --recheck-ms -1"}) {
    const ToolRun r = run_tool(args);
    EXPECT_EQ(r.status, 2) << "cpuhp " << args << "\n" << describe(r);
    EXPECT_FALSE(r.err.empty()) << "cpuhp " << args << ": no message on stderr";
  }
}

// Every floating-point option refuses NaN, +-inf and values out of range
// (CLI::Range let NaN through: `torture --seconds nan` checked nothing and
// exited 0), with exit 2 and a message that names the option and the text,
// and nothing done (trace wrote no file).
TEST_F(ToolTest, FloatingPointOptionsRefuseNanInfinityAndOutOfRange) {
  const auto out = std::filesystem::path(testing::TempDir()) /
                   ("cpuhp_tool_test_nan_" + std::to_string(::getpid()) + ".json");
  const std::string trace = "trace --transitions 1 --out '" + out.string() + "'";
  // (A short --seconds where it is not the option under test: before the
  // fix each of these runs went ahead.)
  const std::vector<std::pair<std::string, std::string>> options = {
      {"demo", "--seconds"},
      {"demo --seconds 0.2", "--failure-rate"},
      {"torture", "--seconds"},
      {"torture --seconds 0.2", "--failure-rate"},
      {trace, "--failure-rate"}};
  for (const auto& [command, option] : options) {
    for (const char* bad :
         {"nan", "NaN", "-nan", "inf", "-inf", "infinity", "1e999", "-0.5", "-1", "x"}) {
      const std::string args = command + " " + option + " " + bad;
      const ToolRun r = run_tool(args);
      EXPECT_EQ(r.status, 2) << "cpuhp " << args << "\n" << describe(r);
      EXPECT_NE(r.err.find(option), std::string::npos)
          << "cpuhp " << args << ": the message does not name the option\n"
          << describe(r);
      EXPECT_NE(r.err.find(std::string("'") + bad + "'"), std::string::npos)
          << "cpuhp " << args << ": the message does not quote the text\n"
          << describe(r);
      EXPECT_EQ(r.out.find("report"), std::string::npos) << "cpuhp " << args << " ran\n"
                                                         << describe(r);
    }
  }
  EXPECT_FALSE(std::filesystem::exists(out)) << "trace wrote " << out;
  // Above the maximum too.
  for (const char* args : {"demo --seconds 3601", "torture --seconds 86401",
                           "demo --failure-rate 1.01", "torture --failure-rate 2"}) {
    const ToolRun r = run_tool(args);
    EXPECT_EQ(r.status, 2) << "cpuhp " << args << "\n" << describe(r);
  }
  // The bounds themselves are accepted.
  const ToolRun ok = run_tool("torture --seconds 0.1 --failure-rate 1 --json");
  EXPECT_EQ(ok.status, 0) << describe(ok);
}

// ------------------------------------------------------------ host --follow

// `cpuhp host --follow | head -n 2` must end: the follower thread (which
// blocks every signal, SIGPIPE included) used to print, so neither SIGPIPE
// nor EPIPE stopped anything; and with no CPU change nothing was even written
// after the first lines. The reader closes after the first line(s), with no
// change to come: the tool must exit 141 on its own.
TEST_F(ToolTest, HostFollowEndsWhenTheReaderOfStdoutGoesAway) {
  FakeHostTree tree;
  for (const bool json : {false, true}) {
    std::vector<std::string> args = {"host", "--follow", "--root", tree.root()};
    if (json) args.push_back("--json");
    RunningTool tool(args);
    ASSERT_TRUE(tool.started());
    // Text: 6 mask lines; JSON: one object. Read only the first line of them.
    ASSERT_TRUE(tool.read_lines(1)) << tool.describe();
    if (json) EXPECT_EQ(tool.out().rfind("{\"root\":", 0), 0u) << tool.describe();
    tool.close_reader();
    const std::optional<int> status = tool.wait_exit();
    ASSERT_TRUE(status) << "still running after its stdout's reader went away"
                        << (json ? " (--json)" : "") << "\n"
                        << tool.describe();
    EXPECT_EQ(*status, 141) << tool.describe();
    EXPECT_NE(tool.err().find("reader of stdout went away"), std::string::npos)
        << tool.describe();
  }
}

// No reader at all: the very first write fails with EPIPE.
TEST_F(ToolTest, HostFollowWithoutAReaderExits141) {
  FakeHostTree tree;
  RunningTool tool({"host", "--follow", "--root", tree.root()}, /*reader_closed=*/true);
  ASSERT_TRUE(tool.started());
  const std::optional<int> status = tool.wait_exit();
  ASSERT_TRUE(status) << "still running without a reader\n" << tool.describe();
  EXPECT_EQ(*status, 141) << tool.describe();
}

// Changes are printed (by the main thread now), and SIGTERM still stops the
// tool cleanly with exit 0.
TEST_F(ToolTest, HostFollowPrintsChangesAndStopsOnSigterm) {
  FakeHostTree tree;
  RunningTool tool({"host", "--follow", "--recheck-ms", "5", "--root", tree.root()});
  ASSERT_TRUE(tool.started());
  ASSERT_TRUE(tool.read_lines(6)) << tool.describe();  // the masks
  EXPECT_NE(tool.out().find("effective  0-3"), std::string::npos) << tool.describe();
  tree.affinity("0-2");  // seen by the periodic re-check
  ASSERT_TRUE(tool.read_lines(7)) << tool.describe();
  EXPECT_NE(tool.out().find("cpu3 offline cause=affinity"), std::string::npos)
      << tool.describe();
  ASSERT_EQ(::kill(tool.pid(), SIGTERM), 0);
  const std::optional<int> status = tool.wait_exit();
  ASSERT_TRUE(status) << "SIGTERM did not stop it\n" << tool.describe();
  EXPECT_EQ(*status, 0) << tool.describe();
  EXPECT_NE(tool.err().find("stopped by SIGTERM: 1 changes"), std::string::npos)
      << tool.describe();
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
