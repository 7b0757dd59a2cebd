// Unit tests for the kernel spellings (include/cpuhp/kernel.h) on the default
// Domain: the snippet of the 2014 mail compiles as written and runs, and the
// kernel names return 0 or a negative errno as the kernel's do.
//
// Every test starts with cpuhp::kernel::init(), which replaces the default
// domain (allowed: no other thread uses it between tests). The
// *DeathTest suites run first and in child processes (threadsafe style: the
// child re-executes this binary), so the child that checks the default domain
// without init() really sees one that was never initialised.
#include <cpuhp/kernel.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "support/waiting.h"

namespace {

using namespace std::chrono_literals;
using cpuhp::testing_support::eventually;
using cpuhp::testing_support::kSettle;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

const char* event_name(unsigned long action) {
  switch (action & ~CPU_TASKS_FROZEN) {
    case CPU_UP_PREPARE:
      return "UP_PREPARE";
    case CPU_UP_CANCELED:
      return "UP_CANCELED";
    case CPU_ONLINE:
      return "ONLINE";
    case CPU_DOWN_PREPARE:
      return "DOWN_PREPARE";
    case CPU_DOWN_FAILED:
      return "DOWN_FAILED";
    case CPU_DEAD:
      return "DEAD";
    case CPU_POST_DEAD:
      return "POST_DEAD";
  }
  return "UNKNOWN";
}

std::vector<int> online_cpus() {
  std::vector<int> out;
  int cpu;
  for_each_online_cpu(cpu) out.push_back(cpu);
  return out;
}

void init_or_fail(unsigned nr_cpus, unsigned nr_online) {
  cpuhp::Status s = cpuhp::kernel::init(nr_cpus, nr_online);
  ASSERT_TRUE(s.ok()) << s.error().message();
}

}  // namespace

// ---------------------------------------------------------------------------
// The subsystem of the 2014 mail ("foobar"), written as kernel code.

static std::vector<int> foobar_inited;          // CPUs init_cpu() ran on
static std::vector<std::string> foobar_events;  // "EVENT:cpu"
static int foobar_up_prepare_error;             // next CPU_UP_PREPARE fails with it

static void init_cpu(int cpu) { foobar_inited.push_back(cpu); }

static int foobar_cpu_callback(struct notifier_block* nfb, unsigned long action,
                               void* hcpu) {
  unsigned int cpu = (unsigned long)hcpu;
  int err;

  (void)nfb;
  foobar_events.push_back(std::string(event_name(action)) +
                          ((action & CPU_TASKS_FROZEN) ? "|FROZEN" : "") + ":" +
                          std::to_string(cpu));
  switch (action & ~CPU_TASKS_FROZEN) {
    case CPU_UP_PREPARE:
      err = foobar_up_prepare_error;
      foobar_up_prepare_error = 0;
      if (err) return notifier_from_errno(err);
      init_cpu(cpu);
      break;
    case CPU_ONLINE:
      if (!cpu_online(cpu)) return NOTIFY_BAD;  // cannot happen; the trace shows it
      break;
    case CPU_DEAD:
      if (cpu_online(cpu)) return NOTIFY_BAD;
      break;
  }
  return NOTIFY_OK;
}

// clang-format off
static struct notifier_block foobar_cpu_notifier = { .notifier_call = foobar_cpu_callback, };

static void foobar_init(void)
{
	int cpu;

	cpu_maps_update_begin();
	for_each_online_cpu(cpu)
	init_cpu(cpu);
	/* This doesn't take the cpu_add_remove_lock */
	__register_cpu_notifier(&foobar_cpu_notifier);
	cpu_maps_update_done();
}
// clang-format on

static void foobar_exit(void) {
  cpu_notifier_register_begin();
  __unregister_cpu_notifier(&foobar_cpu_notifier);
  cpu_notifier_register_done();
}

static void foobar_reset(void) {
  foobar_inited.clear();
  foobar_events.clear();
  foobar_up_prepare_error = 0;
}

// Two more notifiers with priorities, for ordering and refusal.
static std::vector<std::string> prio_events;  // "hi:EVENT:cpu"
static unsigned long lo_refuses;              // event the low one refuses, or 0

static int prio_callback(struct notifier_block* nb, unsigned long action, void* hcpu);
static struct notifier_block hi_nb = {.notifier_call = prio_callback, .priority = 10};
static struct notifier_block lo_nb = {.notifier_call = prio_callback, .priority = 0};
static struct notifier_block mid_nb = {.notifier_call = prio_callback, .priority = 5};

static int prio_callback(struct notifier_block* nb, unsigned long action, void* hcpu) {
  const char* who = nb == &hi_nb ? "hi" : nb == &lo_nb ? "lo" : "mid";
  prio_events.push_back(std::string(who) + ":" + event_name(action) + ":" +
                        std::to_string((unsigned long)hcpu));
  if (nb == &lo_nb && lo_refuses != 0 && (action & ~CPU_TASKS_FROZEN) == lo_refuses)
    return NOTIFY_BAD;
  return NOTIFY_OK;
}

// A state's callbacks (cpuhp_setup_state takes plain function pointers).
static std::vector<unsigned> st_started, st_torn;
static unsigned st_fail_cpu = ~0u;  // startup on this CPU fails with -ENOMEM
static bool st_saw_online_in_startup, st_saw_offline_in_startup;

static int st_startup(unsigned int cpu) {
  if (cpu == st_fail_cpu) return -ENOMEM;
  if (cpu_online(cpu))
    st_saw_online_in_startup = true;
  else
    st_saw_offline_in_startup = true;
  st_started.push_back(cpu);
  return 0;
}
static int st_teardown(unsigned int cpu) {
  st_torn.push_back(cpu);
  return 0;
}
static void st_reset() {
  st_started.clear();
  st_torn.clear();
  st_fail_cpu = ~0u;
  st_saw_online_in_startup = st_saw_offline_in_startup = false;
}

using Events = std::vector<std::string>;
using Cpus = std::vector<unsigned>;

// ---------------------------------------------------------------------------
// Death tests (run first; each in a fresh child process).

namespace {

// The highest CPU id in /sys/devices/system/cpu/possible, plus one; what the
// kernel calls nr_cpu_ids. 0 if the file cannot be read.
unsigned machine_nr_cpu_ids() {
  std::ifstream in("/sys/devices/system/cpu/possible");
  std::string text;
  if (!std::getline(in, text)) return 0;
  unsigned highest = 0;
  bool any = false;
  std::stringstream ranges(text);
  for (std::string range; std::getline(ranges, range, ',');) {
    const auto dash = range.find('-');
    const std::string last = dash == std::string::npos ? range : range.substr(dash + 1);
    if (last.empty()) continue;
    highest = std::max(highest, static_cast<unsigned>(std::stoul(last)));
    any = true;
  }
  return any ? highest + 1 : 0;
}

// Runs in the death-test child: the default domain was never initialised.
[[noreturn]] void check_default_domain_and_exit() {
  unsigned expected = machine_nr_cpu_ids();
  if (expected == 0) {
    expected = std::thread::hardware_concurrency();
    if (expected == 0) expected = 1;
  }
  const unsigned online = num_online_cpus();
  const unsigned ids = nr_cpu_ids;
  unsigned walked = 0;
  int cpu;
  for_each_possible_cpu(cpu)++ walked;
  if (online != expected || ids != expected || walked != expected) {
    std::fprintf(stderr,
                 "default domain: %u online, nr_cpu_ids %u, %u possible walked; "
                 "expected %u from /sys/devices/system/cpu/possible\n",
                 online, ids, walked, expected);
    std::_Exit(1);
  }
  std::_Exit(0);
}

}  // namespace

TEST(KernelDeathTest, DefaultDomainWithoutInitMirrorsThisMachine) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(check_default_domain_and_exit(), ::testing::ExitedWithCode(0), "");
}

TEST(KernelDeathTest, CpuMapsUpdateBeginTwiceOnOneThreadAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        alarm(30);  // a hang dies of SIGALRM without the message: the test fails
        (void)cpuhp::kernel::init(4, 2);
        cpu_maps_update_begin();
        cpu_maps_update_begin();
      },
      "cpu_maps_update_begin\\(\\) twice");
}

TEST(KernelDeathTest, CpuMapsUpdateBeginUnderGetOnlineCpusAbortsNamingTheReadLock) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        alarm(30);
        (void)cpuhp::kernel::init(4, 2);
        get_online_cpus();
        cpu_maps_update_begin();
      },
      "hotplug read lock");
  EXPECT_DEATH(
      {
        alarm(30);
        (void)cpuhp::kernel::init(4, 2);
        cpus_read_lock();
        cpu_notifier_register_begin();
      },
      "hotplug read lock");
}

TEST(KernelDeathTest, CpuMapsUpdateDoneWithoutBeginAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        (void)cpuhp::kernel::init(4, 2);
        cpu_maps_update_done();
      },
      "without cpu_maps_update_begin");
}

// ---------------------------------------------------------------------------
// The mail's snippet.

TEST(KernelSnippet, MailSnippetInitialisesOnlineCpusAndRegistersInOneStep) {
  init_or_fail(8, 4);
  foobar_reset();

  foobar_init();
  EXPECT_EQ(foobar_inited, (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(foobar_events, Events{});

  EXPECT_EQ(cpu_up(5), 0);
  EXPECT_EQ(foobar_events, (Events{"UP_PREPARE:5", "ONLINE:5"}));
  EXPECT_EQ(foobar_inited, (std::vector<int>{0, 1, 2, 3, 5}));
  foobar_events.clear();

  EXPECT_EQ(cpu_down(2), 0);
  EXPECT_EQ(foobar_events, (Events{"DOWN_PREPARE:2", "DEAD:2", "POST_DEAD:2"}));
  foobar_events.clear();

  // A refusal with an errno: the up fails with that errno.
  foobar_up_prepare_error = -ENOMEM;
  EXPECT_EQ(cpu_up(6), -ENOMEM);
  EXPECT_EQ(foobar_events, (Events{"UP_PREPARE:6"}));
  EXPECT_FALSE(cpu_online(6));
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 6"))
      << cpuhp::kernel::last_error();
  foobar_events.clear();

  EXPECT_EQ(add_cpu(6), 0);
  EXPECT_EQ(remove_cpu(6), 0);
  EXPECT_EQ(foobar_events, (Events{"UP_PREPARE:6", "ONLINE:6", "DOWN_PREPARE:6", "DEAD:6",
                                   "POST_DEAD:6"}));
  foobar_events.clear();

  foobar_exit();
  EXPECT_EQ(cpu_up(7), 0);
  EXPECT_EQ(foobar_events, Events{});
}

TEST(KernelSnippet, SuspendResumeSetsCpuTasksFrozen) {
  init_or_fail(4, 4);
  foobar_reset();
  foobar_init();
  cpuhp::Domain& d = cpuhp::kernel::default_domain();
  ASSERT_TRUE(d.suspend_nonboot().ok());
  ASSERT_TRUE(d.resume_nonboot().ok());
  EXPECT_EQ(foobar_events,
            (Events{"DOWN_PREPARE|FROZEN:3", "DEAD|FROZEN:3", "POST_DEAD|FROZEN:3",
                    "DOWN_PREPARE|FROZEN:2", "DEAD|FROZEN:2", "POST_DEAD|FROZEN:2",
                    "DOWN_PREPARE|FROZEN:1", "DEAD|FROZEN:1", "POST_DEAD|FROZEN:1",
                    "UP_PREPARE|FROZEN:1", "ONLINE|FROZEN:1", "UP_PREPARE|FROZEN:2",
                    "ONLINE|FROZEN:2", "UP_PREPARE|FROZEN:3", "ONLINE|FROZEN:3"}));
  foobar_exit();
}

// ---------------------------------------------------------------------------
// Notifiers.

TEST(KernelNotifiers, PriorityOrderRefusalAndUnregister) {
  init_or_fail(8, 4);
  prio_events.clear();
  lo_refuses = 0;
  EXPECT_EQ(register_cpu_notifier(&lo_nb), 0);
  EXPECT_EQ(register_cpu_notifier(&hi_nb), 0);

  EXPECT_EQ(cpu_up(4), 0);
  EXPECT_EQ(prio_events,
            (Events{"hi:UP_PREPARE:4", "lo:UP_PREPARE:4", "hi:ONLINE:4", "lo:ONLINE:4"}));
  prio_events.clear();

  lo_refuses = CPU_DOWN_PREPARE;
  EXPECT_EQ(cpu_down(4), -EPERM);  // notifier_to_errno(NOTIFY_BAD)
  EXPECT_EQ(prio_events,
            (Events{"hi:DOWN_PREPARE:4", "lo:DOWN_PREPARE:4", "hi:DOWN_FAILED:4"}));
  EXPECT_TRUE(cpu_online(4));
  EXPECT_TRUE(cpuhp::kernel::default_domain().active().test(4));
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 4"))
      << cpuhp::kernel::last_error();
  prio_events.clear();

  lo_refuses = CPU_UP_PREPARE;
  EXPECT_EQ(cpu_up(5), -EPERM);
  EXPECT_EQ(prio_events,
            (Events{"hi:UP_PREPARE:5", "lo:UP_PREPARE:5", "hi:UP_CANCELED:5"}));
  EXPECT_FALSE(cpu_online(5));
  prio_events.clear();
  lo_refuses = 0;

  unregister_cpu_notifier(&lo_nb);
  EXPECT_EQ(cpu_down(4), 0);
  EXPECT_EQ(prio_events, (Events{"hi:DOWN_PREPARE:4", "hi:DEAD:4", "hi:POST_DEAD:4"}));
  unregister_cpu_notifier(&hi_nb);
}

TEST(KernelNotifiers, RegisteringTwiceIsEbusyUnregisteringUnknownReportsIt) {
  init_or_fail(4, 2);
  prio_events.clear();
  EXPECT_EQ(register_cpu_notifier(&hi_nb), 0);
  EXPECT_EQ(register_cpu_notifier(&hi_nb), -EBUSY);
  EXPECT_FALSE(cpuhp::kernel::last_error().empty());

  unregister_cpu_notifier(&lo_nb);  // never registered: void, but reported
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "not registered"))
      << cpuhp::kernel::last_error();

  struct notifier_block empty = {};
  EXPECT_EQ(register_cpu_notifier(&empty), -EINVAL);
  EXPECT_EQ(register_cpu_notifier(nullptr), -EINVAL);

  EXPECT_EQ(cpu_up(2), 0);
  EXPECT_EQ(prio_events, (Events{"hi:UP_PREPARE:2", "hi:ONLINE:2"}));  // once
  unregister_cpu_notifier(&hi_nb);
}

// A failed register_cpu_notifier() must change nothing (cpuhp's error
// contract), in particular not the block the chain already holds.
TEST(KernelNotifiers, FailedRegistrationLeavesTheRegisteredBlockAlone) {
  init_or_fail(4, 2);
  prio_events.clear();
  hi_nb.priority = 10;
  lo_nb.priority = 0;
  mid_nb.priority = 5;
  EXPECT_EQ(register_cpu_notifier(&hi_nb), 0);
  EXPECT_EQ(register_cpu_notifier(&lo_nb), 0);
  // A second registration of lo with another priority is refused...
  lo_nb.priority = 100;
  EXPECT_EQ(register_cpu_notifier(&lo_nb), -EBUSY);
  lo_nb.priority = 0;
  // ...so lo is still the priority-0 notifier it was registered as: mid (5)
  // goes between hi (10) and lo (0).
  EXPECT_EQ(register_cpu_notifier(&mid_nb), 0);
  EXPECT_EQ(cpu_up(2), 0);
  EXPECT_EQ(prio_events, (Events{"hi:UP_PREPARE:2", "mid:UP_PREPARE:2", "lo:UP_PREPARE:2",
                                 "hi:ONLINE:2", "mid:ONLINE:2", "lo:ONLINE:2"}));
  unregister_cpu_notifier(&hi_nb);
  unregister_cpu_notifier(&lo_nb);
  unregister_cpu_notifier(&mid_nb);
  hi_nb.priority = 10;
  lo_nb.priority = 0;
  mid_nb.priority = 5;
}

TEST(KernelNotifiers, NoLockVariantsNeedCpuMapsUpdateBegin) {
  init_or_fail(4, 2);
  prio_events.clear();
  EXPECT_EQ(__register_cpu_notifier(&hi_nb), -EINVAL);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "cpu_maps_update_begin"))
      << cpuhp::kernel::last_error();
  EXPECT_EQ(cpu_up(2), 0);
  EXPECT_EQ(prio_events, Events{});  // not registered

  cpu_notifier_register_begin();
  EXPECT_EQ(__register_cpu_notifier(&hi_nb), 0);
  // The locking variant on the thread that holds the writers' lock: refused.
  EXPECT_EQ(register_cpu_notifier(&lo_nb), -EDEADLK);
  EXPECT_EQ(cpu_down(2), -EDEADLK);
  cpu_notifier_register_done();
  EXPECT_EQ(cpu_down(2), 0);
  EXPECT_EQ(prio_events, (Events{"hi:DOWN_PREPARE:2", "hi:DEAD:2", "hi:POST_DEAD:2"}));
  prio_events.clear();

  __unregister_cpu_notifier(&hi_nb);  // outside: reported, nothing changes
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "cpu_maps_update_begin"))
      << cpuhp::kernel::last_error();
  EXPECT_EQ(cpu_up(2), 0);
  EXPECT_EQ(prio_events, (Events{"hi:UP_PREPARE:2", "hi:ONLINE:2"}));
  prio_events.clear();

  cpu_maps_update_begin();
  __unregister_cpu_notifier(&hi_nb);
  cpu_maps_update_done();
  EXPECT_EQ(cpu_down(2), 0);
  EXPECT_EQ(prio_events, Events{});
}

static int reentry_result = 1;
static int reentry_callback(struct notifier_block* nb, unsigned long action, void* hcpu) {
  (void)nb;
  (void)hcpu;
  if (action == CPU_UP_PREPARE) reentry_result = register_cpu_notifier(&lo_nb);
  return NOTIFY_OK;
}
static struct notifier_block reentry_nb = {.notifier_call = reentry_callback};

TEST(KernelNotifiers, RegisteringUnderTheReadLockOrFromACallbackIsEdeadlk) {
  init_or_fail(4, 2);
  prio_events.clear();

  get_online_cpus();
  EXPECT_EQ(register_cpu_notifier(&hi_nb), -EDEADLK);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "register_begin"))
      << cpuhp::kernel::last_error();
  put_online_cpus();

  cpus_read_lock();
  EXPECT_EQ(register_cpu_notifier(&hi_nb), -EDEADLK);
  cpus_read_unlock();

  EXPECT_EQ(register_cpu_notifier(&reentry_nb), 0);
  reentry_result = 1;
  EXPECT_EQ(cpu_up(2), 0);  // the refused call returned; the up went on
  EXPECT_EQ(reentry_result, -EDEADLK);
  EXPECT_EQ(prio_events, Events{});  // lo was not registered
  unregister_cpu_notifier(&reentry_nb);
}

TEST(KernelNotifiers, NotifierFromErrno) {
  EXPECT_EQ(notifier_from_errno(0), NOTIFY_OK);
  EXPECT_NE(notifier_from_errno(-ENOMEM) & NOTIFY_STOP_MASK, 0);
  EXPECT_EQ(notifier_to_errno(notifier_from_errno(-ENOMEM)), -ENOMEM);
  EXPECT_EQ(notifier_to_errno(notifier_from_errno(-EBUSY)), -EBUSY);
  EXPECT_EQ(notifier_to_errno(NOTIFY_OK), 0);
  EXPECT_EQ(notifier_to_errno(NOTIFY_DONE), 0);
  EXPECT_EQ(notifier_to_errno(NOTIFY_BAD), -EPERM);
}

// ---------------------------------------------------------------------------
// The hotplug lock.

TEST(KernelLocks, GetOnlineCpusHoldsHotplugOff) {
  init_or_fail(4, 2);
  get_online_cpus();
  get_online_cpus();  // nests
  std::atomic<bool> started{false}, returned{false};
  int rc = 1;
  std::thread upper([&] {
    started = true;
    rc = cpu_up(2);
    returned = true;
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(returned.load());
  EXPECT_FALSE(cpu_online(2));
  put_online_cpus();
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(returned.load());  // still one hold
  put_online_cpus();
  upper.join();
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(cpu_online(2));
}

TEST(KernelLocks, CpusReadLockHoldsHotplugOff) {
  init_or_fail(4, 4);
  cpus_read_lock();
  std::atomic<bool> started{false}, returned{false};
  int rc = 1;
  std::thread downer([&] {
    started = true;
    rc = cpu_down(3);
    returned = true;
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(returned.load());
  EXPECT_TRUE(cpu_online(3));
  cpus_read_unlock();
  downer.join();
  EXPECT_EQ(rc, 0);
  EXPECT_FALSE(cpu_online(3));
}

TEST(KernelLocks, CpuMapsUpdateBeginHoldsHotplugOff) {
  init_or_fail(4, 2);
  cpu_maps_update_begin();
  std::atomic<bool> started{false}, returned{false};
  int rc = 1;
  std::thread upper([&] {
    started = true;
    rc = cpu_up(3);
    returned = true;
  });
  ASSERT_TRUE(eventually([&] { return started.load(); }));
  std::this_thread::sleep_for(kSettle);
  EXPECT_FALSE(returned.load());
  EXPECT_EQ(cpu_up(2), -EDEADLK);  // this thread holds the writers' lock
  cpu_maps_update_done();
  upper.join();
  EXPECT_EQ(rc, 0);
  EXPECT_TRUE(cpu_online(3));
}

// ---------------------------------------------------------------------------
// States.

TEST(KernelStates, SetupStateOnlineDynRunsStartupOnOnlineCpus) {
  init_or_fail(8, 4);
  st_reset();
  const int state = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "x", st_startup, st_teardown);
  ASSERT_GT(state, 0) << cpuhp::kernel::last_error();
  EXPECT_GE(state, CPUHP_AP_ONLINE_DYN);
  EXPECT_LE(state, CPUHP_AP_ONLINE_DYN_END);
  EXPECT_EQ(st_started, (Cpus{0, 1, 2, 3}));
  EXPECT_TRUE(st_saw_online_in_startup);
  EXPECT_FALSE(st_saw_offline_in_startup);

  EXPECT_EQ(cpu_up(5), 0);
  EXPECT_EQ(st_started, (Cpus{0, 1, 2, 3, 5}));
  EXPECT_FALSE(st_saw_offline_in_startup);  // ONLINE section: after the online bit
  EXPECT_EQ(cpu_down(1), 0);
  EXPECT_EQ(st_torn, (Cpus{1}));

  // A second dynamic state gets another slot; a name cannot be used twice.
  const int other = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "y", nullptr, nullptr);
  EXPECT_GT(other, 0);
  EXPECT_NE(other, state);
  EXPECT_EQ(cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "x", st_startup, st_teardown), -EBUSY);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "x")) << cpuhp::kernel::last_error();

  st_torn.clear();
  cpuhp_remove_state(state);
  std::sort(st_torn.begin(), st_torn.end());
  EXPECT_EQ(st_torn, (Cpus{0, 2, 3, 5}));
  st_reset();
  EXPECT_EQ(cpu_up(6), 0);
  EXPECT_EQ(st_started, Cpus{});  // removed
  cpuhp_remove_state(other);

  // Removed names can be used again.
  const int again = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "x", nullptr, nullptr);
  EXPECT_GT(again, 0);
  cpuhp_remove_state_nocalls(static_cast<enum cpuhp_state>(again));
}

TEST(KernelStates, NocallsAndPrepareDyn) {
  init_or_fail(8, 4);
  st_reset();
  const int state =
      cpuhp_setup_state_nocalls(CPUHP_BP_PREPARE_DYN, "p", st_startup, st_teardown);
  ASSERT_GT(state, 0) << cpuhp::kernel::last_error();
  EXPECT_GE(state, CPUHP_BP_PREPARE_DYN);
  EXPECT_LE(state, CPUHP_BP_PREPARE_DYN_END);
  EXPECT_EQ(st_started, Cpus{});  // nocalls

  EXPECT_EQ(cpu_up(6), 0);
  EXPECT_EQ(st_started, (Cpus{6}));
  EXPECT_TRUE(st_saw_offline_in_startup);  // PREPARE: before the online bit
  EXPECT_FALSE(st_saw_online_in_startup);
  EXPECT_EQ(cpu_down(6), 0);
  EXPECT_EQ(st_torn, (Cpus{6}));

  st_reset();
  cpuhp_remove_state_nocalls(static_cast<enum cpuhp_state>(state));
  EXPECT_EQ(st_torn, Cpus{});  // nocalls

  // With calls, a PREPARE state runs on the online CPUs too.
  const int with_calls =
      cpuhp_setup_state(CPUHP_BP_PREPARE_DYN, "q", st_startup, st_teardown);
  ASSERT_GT(with_calls, 0);
  EXPECT_EQ(st_started, (Cpus{0, 1, 2, 3}));
  cpuhp_remove_state(with_calls);
  std::sort(st_torn.begin(), st_torn.end());
  EXPECT_EQ(st_torn, (Cpus{0, 1, 2, 3}));
}

TEST(KernelStates, FailingStartupErrnoIsPropagatedAndRolledBack) {
  init_or_fail(4, 4);
  st_reset();
  st_fail_cpu = 2;
  EXPECT_EQ(cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "fails", st_startup, st_teardown),
            -ENOMEM);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 2"))
      << cpuhp::kernel::last_error();
  EXPECT_EQ(st_started, (Cpus{0, 1}));
  EXPECT_EQ(st_torn, (Cpus{1, 0}));  // rolled back, in reverse
  EXPECT_FALSE(cpuhp::kernel::default_domain().find_state("fails").ok());

  st_reset();
  const int state =
      cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "fails", st_startup, st_teardown);
  ASSERT_GT(state, 0);
  EXPECT_EQ(cpu_down(3), 0);
  st_fail_cpu = 3;
  EXPECT_EQ(cpu_up(3), -ENOMEM);
  EXPECT_FALSE(cpu_online(3));
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 3"))
      << cpuhp::kernel::last_error();
  st_fail_cpu = ~0u;
  EXPECT_EQ(cpu_up(3), 0);
  cpuhp_remove_state(state);
}

TEST(KernelStates, BadStatesAreEinval) {
  init_or_fail(4, 2);
  EXPECT_EQ(cpuhp_setup_state(CPUHP_ONLINE, "top", st_startup, nullptr), -EINVAL);
  EXPECT_EQ(cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, nullptr, st_startup, nullptr),
            -EINVAL);
  cpuhp_remove_state(CPUHP_AP_ONLINE_DYN);  // nothing there: reported
  EXPECT_FALSE(cpuhp::kernel::last_error().empty());
}

// ---------------------------------------------------------------------------
// CPUs.

TEST(KernelCpus, UpDownReturnZeroOrNegativeErrno) {
  init_or_fail(4, 2);
  EXPECT_EQ(cpu_up(4), -EINVAL);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 4"))
      << cpuhp::kernel::last_error();
  EXPECT_EQ(cpu_up(nr_cpu_ids), -EINVAL);
  EXPECT_EQ(cpu_down(1000), -EINVAL);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 1000"))
      << cpuhp::kernel::last_error();
  EXPECT_EQ(add_cpu(99), -EINVAL);
  EXPECT_EQ(remove_cpu(99), -EINVAL);

  EXPECT_EQ(cpu_up(1), 0);    // already online: 0, as in the kernel
  EXPECT_EQ(cpu_down(3), 0);  // already offline: 0
  EXPECT_EQ(add_cpu(2), 0);
  EXPECT_TRUE(cpu_online(2));
  EXPECT_EQ(remove_cpu(2), 0);
  EXPECT_FALSE(cpu_online(2));

  EXPECT_EQ(cpu_down(1), 0);
  EXPECT_EQ(cpu_down(0), -EBUSY);  // the last online CPU
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 0"))
      << cpuhp::kernel::last_error();
  EXPECT_TRUE(cpu_online(0));
  EXPECT_EQ(remove_cpu(0), -EBUSY);

  ASSERT_TRUE(cpuhp::kernel::default_domain().disable_hotplug().ok());
  EXPECT_EQ(cpu_up(1), -EBUSY);
  ASSERT_TRUE(cpuhp::kernel::default_domain().enable_hotplug().ok());
  EXPECT_EQ(cpu_up(1), 0);
}

TEST(KernelCpus, LastErrorIsPerThread) {
  init_or_fail(4, 2);
  EXPECT_EQ(cpu_up(7), -EINVAL);
  const std::string mine = cpuhp::kernel::last_error();
  std::thread([] {
    EXPECT_EQ(cpu_down(9), -EINVAL);
    EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 9"));
  }).join();
  EXPECT_EQ(cpuhp::kernel::last_error(), mine);
}

TEST(KernelCpus, IteratorsAndCounts) {
  init_or_fail(8, 3);
  EXPECT_EQ(nr_cpu_ids, 8u);
  EXPECT_EQ(num_online_cpus(), 3u);
  EXPECT_TRUE(cpu_online(2));
  EXPECT_FALSE(cpu_online(3));
  EXPECT_FALSE(cpu_online(100));

  unsigned int cpu;
  Cpus possible, present;
  for_each_possible_cpu(cpu) possible.push_back(cpu);
  for_each_present_cpu(cpu) present.push_back(cpu);
  EXPECT_EQ(possible, (Cpus{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(present, possible);
  EXPECT_EQ(online_cpus(), (std::vector<int>{0, 1, 2}));

  EXPECT_EQ(cpu_up(6), 0);
  EXPECT_EQ(online_cpus(), (std::vector<int>{0, 1, 2, 6}));
  EXPECT_EQ(num_online_cpus(), 4u);

  ASSERT_TRUE(cpuhp::kernel::default_domain().set_present(7, false).ok());
  present.clear();
  for_each_present_cpu(cpu) present.push_back(cpu);
  EXPECT_EQ(present, (Cpus{0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(cpu_up(7), -EINVAL);  // not present
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "CPU 7"))
      << cpuhp::kernel::last_error();
}

TEST(KernelRcu, ReadSectionAndSynchronize) {
  init_or_fail(4, 4);
  rcu_read_lock();
  rcu_read_lock();  // nests
  std::vector<int> seen = online_cpus();
  // Taking a CPU down waits for a grace period: refused inside a reader.
  EXPECT_EQ(cpu_down(3), -EDEADLK);
  EXPECT_TRUE(contains(cpuhp::kernel::last_error(), "RCU"))
      << cpuhp::kernel::last_error();
  rcu_read_unlock();
  rcu_read_unlock();
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3}));
  synchronize_rcu();
  EXPECT_EQ(cpu_down(3), 0);
  synchronize_rcu();
}

// ---------------------------------------------------------------------------
// init().

TEST(KernelInit, BadCountsAreRejectedAndChangeNothing) {
  init_or_fail(6, 2);
  for (auto [cpus, online] : {std::pair{0u, 0u}, std::pair{4u, 0u}, std::pair{4u, 5u},
                              std::pair{cpuhp::kMaxCpus + 1, 1u}}) {
    cpuhp::Status s = cpuhp::kernel::init(cpus, online);
    ASSERT_FALSE(s.ok()) << cpus << ", " << online;
    EXPECT_EQ(s.error().code(), cpuhp::Errc::kInvalidArgument);
    EXPECT_FALSE(s.error().message().empty());
  }
  EXPECT_EQ(nr_cpu_ids, 6u);
  EXPECT_EQ(num_online_cpus(), 2u);
  init_or_fail(1, 1);
  EXPECT_EQ(nr_cpu_ids, 1u);
  EXPECT_EQ(cpu_down(0), -EBUSY);
}
