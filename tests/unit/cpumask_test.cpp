#include "cpuhp/cpumask.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <iterator>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cpuhp {

// Readable failures: print masks as cpulists.
void PrintTo(const CpuMask& m, std::ostream* os) {
  *os << "CpuMask(" << m.capacity() << ")[" << m.to_string() << "]";
}

namespace {

static_assert(std::forward_iterator<CpuMask::const_iterator>);
static_assert(std::is_same_v<std::iter_value_t<CpuMask::const_iterator>, unsigned>);

const unsigned kCapacities[] = {1, 63, 64, 65, 8192};

CpuMask random_mask(unsigned capacity, std::mt19937& rng, double density) {
  CpuMask m(capacity);
  std::bernoulli_distribution bit(density);
  for (unsigned cpu = 0; cpu < capacity; ++cpu) {
    if (bit(rng)) m.set(cpu);
  }
  return m;
}

CpuMask mask_of(unsigned capacity, std::initializer_list<unsigned> cpus) {
  CpuMask m(capacity);
  for (unsigned cpu : cpus) m.set(cpu);
  return m;
}

std::vector<unsigned> cpus_of(const CpuMask& m) { return {m.begin(), m.end()}; }

CpuMask parse_ok(std::string_view text, unsigned capacity) {
  Result<CpuMask> r = CpuMask::parse(text, capacity);
  EXPECT_TRUE(r.ok()) << "text \"" << text << "\": " << r.error().message();
  return r.ok() ? std::move(r).value() : CpuMask(capacity);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// ---------------------------------------------------------------------------
// Construction, single bits

TEST(CpuMask, ConstructsEmptyAtEveryValidCapacity) {
  for (unsigned cap : kCapacities) {
    CpuMask m(cap);
    EXPECT_EQ(m.capacity(), cap);
    EXPECT_TRUE(m.empty());
    EXPECT_FALSE(m.full());
    EXPECT_EQ(m.weight(), 0u);
    EXPECT_EQ(m.first(), cap);
    EXPECT_EQ(m.last(), cap);
    EXPECT_EQ(m.first_zero(), 0u);
    EXPECT_EQ(m.begin(), m.end());
    EXPECT_EQ(m.to_string(), "");
  }
}

TEST(CpuMask, BadCapacityThrowsInvalidArgumentNamingIt) {
  for (unsigned cap : {0u, kMaxCpus + 1, 100000u, UINT_MAX}) {
    try {
      CpuMask m(cap);
      FAIL() << "capacity " << cap << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_TRUE(contains(e.what(), "capacity " + std::to_string(cap))) << e.what();
    }
  }
}

TEST(CpuMask, SetClearTestReturnPreviousValue) {
  CpuMask m(65);
  EXPECT_FALSE(m.test(64));
  EXPECT_FALSE(m.set(64));
  EXPECT_TRUE(m.set(64));
  EXPECT_TRUE(m.test(64));
  EXPECT_FALSE(m.test(63));
  EXPECT_FALSE(m.set(0));
  EXPECT_EQ(m.weight(), 2u);
  EXPECT_TRUE(m.clear(64));
  EXPECT_FALSE(m.clear(64));
  EXPECT_FALSE(m.test(64));
  EXPECT_TRUE(m.test(0));
  EXPECT_EQ(m.weight(), 1u);
}

TEST(CpuMask, TestBeyondCapacityIsFalse) {
  CpuMask m(64);
  m.set_all();
  EXPECT_TRUE(m.test(63));
  EXPECT_FALSE(m.test(64));
  EXPECT_FALSE(m.test(9000));
  EXPECT_FALSE(m.test(UINT_MAX));
}

TEST(CpuMask, SetOrClearBeyondCapacityThrowsOutOfRange) {
  CpuMask m(64);
  try {
    m.set(9000);
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "CPU 9000 is out of range (capacity 64)");
  }
  try {
    m.clear(64);
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "CPU 64 is out of range (capacity 64)");
  }
  EXPECT_THROW(m.set(UINT_MAX), std::out_of_range);
  EXPECT_TRUE(m.empty());
}

TEST(CpuMask, SetAllClearAllFullWeight) {
  for (unsigned cap : kCapacities) {
    CpuMask m(cap);
    m.set_all();
    EXPECT_TRUE(m.full()) << cap;
    EXPECT_FALSE(m.empty());
    EXPECT_EQ(m.weight(), cap);
    EXPECT_EQ(m.first(), 0u);
    EXPECT_EQ(m.last(), cap - 1);
    EXPECT_EQ(m.first_zero(), cap);
    EXPECT_EQ(m.to_string(), cap == 1 ? "0" : "0-" + std::to_string(cap - 1));
    m.clear(cap - 1);
    EXPECT_FALSE(m.full());
    EXPECT_EQ(m.first_zero(), cap - 1);
    EXPECT_EQ(m.weight(), cap - 1);
    m.clear_all();
    EXPECT_TRUE(m.empty());
    EXPECT_EQ(m.weight(), 0u);
  }
}

// ---------------------------------------------------------------------------
// Searches and iteration

TEST(CpuMask, FirstNextLastFirstZero) {
  CpuMask m = mask_of(200, {3, 63, 64, 130, 199});
  EXPECT_EQ(m.first(), 3u);
  EXPECT_EQ(m.next(3), 63u);
  EXPECT_EQ(m.next(62), 63u);
  EXPECT_EQ(m.next(63), 64u);
  EXPECT_EQ(m.next(64), 130u);
  EXPECT_EQ(m.next(130), 199u);
  EXPECT_EQ(m.next(199), 200u);
  EXPECT_EQ(m.next(200), 200u);
  EXPECT_EQ(m.next(UINT_MAX), 200u);
  EXPECT_EQ(m.next(0), 3u);
  EXPECT_EQ(m.last(), 199u);
  EXPECT_EQ(m.first_zero(), 0u);

  CpuMask low = mask_of(130, {0, 1, 2});
  EXPECT_EQ(low.first_zero(), 3u);
  EXPECT_EQ(low.last(), 2u);
  low.set_all();
  low.clear(128);
  EXPECT_EQ(low.first_zero(), 128u);
  EXPECT_EQ(low.last(), 129u);
}

TEST(CpuMask, RangeForYieldsSetBitsAscending) {
  CpuMask m = mask_of(130, {0, 5, 63, 64, 127, 128, 129});
  std::vector<unsigned> got;
  for (unsigned cpu : m) got.push_back(cpu);
  EXPECT_EQ(got, (std::vector<unsigned>{0, 5, 63, 64, 127, 128, 129}));

  auto it = m.begin();
  EXPECT_EQ(*it++, 0u);
  EXPECT_EQ(*it, 5u);
  auto copy = it;
  ++it;
  EXPECT_EQ(*copy, 5u);  // forward iterator: copies are independent
  EXPECT_EQ(*it, 63u);
  EXPECT_EQ(std::distance(m.begin(), m.end()), 7);
}

TEST(CpuMask, IterationMatchesTestForRandomMasks) {
  std::mt19937 rng(1);
  for (unsigned cap : kCapacities) {
    for (double density : {0.0, 0.01, 0.3, 0.9, 1.0}) {
      CpuMask m = random_mask(cap, rng, density);
      std::vector<unsigned> expected;
      for (unsigned cpu = 0; cpu < cap; ++cpu) {
        if (m.test(cpu)) expected.push_back(cpu);
      }
      EXPECT_EQ(cpus_of(m), expected) << cap;
      EXPECT_EQ(m.weight(), expected.size());
      // next() walks the same sequence.
      std::vector<unsigned> walked;
      for (unsigned cpu = m.first(); cpu < cap; cpu = m.next(cpu)) walked.push_back(cpu);
      EXPECT_EQ(walked, expected);
      EXPECT_EQ(m.last(), expected.empty() ? cap : expected.back());
    }
  }
}

// ---------------------------------------------------------------------------
// Copy and move

TEST(CpuMask, CopyIsAnIndependentSnapshot) {
  CpuMask a = mask_of(100, {1, 99});
  CpuMask b(a);
  EXPECT_EQ(a, b);
  b.set(50);
  EXPECT_FALSE(a.test(50));
  EXPECT_NE(a, b);

  CpuMask same(100);
  same = a;  // same capacity: in place
  EXPECT_EQ(same, a);
  CpuMask other(7);
  other = a;  // different capacity: takes a's
  EXPECT_EQ(other.capacity(), 100u);
  EXPECT_EQ(other, a);
  CpuMask& self = other;
  other = self;
  EXPECT_EQ(other, a);
}

TEST(CpuMask, MoveLeavesAssignableShell) {
  CpuMask a = mask_of(100, {1, 99});
  CpuMask b(std::move(a));
  EXPECT_EQ(b.to_string(), "1,99");
  CpuMask c(3);
  c = std::move(b);
  EXPECT_EQ(c.capacity(), 100u);
  EXPECT_EQ(c.to_string(), "1,99");
  a = c;  // moved-from: may be assigned
  EXPECT_EQ(a, c);
  b = mask_of(5, {4});
  EXPECT_EQ(b.to_string(), "4");
}

// ---------------------------------------------------------------------------
// Set algebra

TEST(CpuMask, AlgebraSameCapacity) {
  const CpuMask a = mask_of(128, {0, 1, 64, 100});
  const CpuMask b = mask_of(128, {1, 2, 100, 127});
  EXPECT_EQ((a & b).to_string(), "1,100");
  EXPECT_EQ((a | b).to_string(), "0-2,64,100,127");
  CpuMask c = a;
  c.and_not(b);
  EXPECT_EQ(c.to_string(), "0,64");
  c = a;
  c &= b;
  EXPECT_EQ(c.to_string(), "1,100");
  c = a;
  c |= b;
  EXPECT_EQ(c.to_string(), "0-2,64,100,127");
  EXPECT_TRUE(a.intersects(b));
  EXPECT_FALSE(mask_of(128, {0}).intersects(mask_of(128, {1})));
  EXPECT_FALSE(CpuMask(128).intersects(CpuMask(128)));
  EXPECT_TRUE((a & b).is_subset_of(a));
  EXPECT_TRUE((a & b).is_subset_of(b));
  EXPECT_FALSE(a.is_subset_of(b));
  EXPECT_TRUE(CpuMask(128).is_subset_of(a));
  EXPECT_TRUE(a.is_subset_of(a));
}

TEST(CpuMask, AlgebraDifferentCapacitiesKeepsLeftCapacity) {
  CpuMask small = mask_of(65, {0, 64});
  CpuMask big = mask_of(200, {0, 64, 65, 199});

  CpuMask s = small | big;
  EXPECT_EQ(s.capacity(), 65u);
  EXPECT_EQ(s.to_string(), "0,64");  // 65 and 199 do not fit
  EXPECT_EQ(s.weight(), 2u);         // padding bits stayed zero
  EXPECT_EQ(s.first_zero(), 1u);

  CpuMask bg = big & small;
  EXPECT_EQ(bg.capacity(), 200u);
  EXPECT_EQ(bg.to_string(), "0,64");  // beyond small's capacity counts as zero

  CpuMask b2 = big | small;
  EXPECT_EQ(b2, big);
  CpuMask b3 = big;
  b3.and_not(small);
  EXPECT_EQ(b3.to_string(), "65,199");
  CpuMask s2 = small;
  s2.and_not(big);
  EXPECT_TRUE(s2.empty());

  CpuMask full_small(65);
  full_small.set_all();
  CpuMask full_big(200);
  full_big.set_all();
  full_small |= full_big;
  EXPECT_TRUE(full_small.full());
  EXPECT_EQ(full_small.weight(), 65u);

  EXPECT_TRUE(small.is_subset_of(big));
  EXPECT_FALSE(big.is_subset_of(small));  // 65, 199 are beyond small
  EXPECT_TRUE(mask_of(200, {3}).is_subset_of(mask_of(4, {3})));
  EXPECT_TRUE(small.intersects(big));
  EXPECT_FALSE(mask_of(200, {150}).intersects(mask_of(65, {0})));
}

TEST(CpuMask, EqualityNeedsSameCapacityAndBits) {
  EXPECT_EQ(mask_of(64, {1}), mask_of(64, {1}));
  EXPECT_NE(mask_of(64, {1}), mask_of(64, {2}));
  EXPECT_NE(mask_of(64, {1}), mask_of(65, {1}));
  EXPECT_NE(CpuMask(64), CpuMask(65));
}

// ---------------------------------------------------------------------------
// Text out

TEST(CpuMask, ToStringUsesCpulistFormat) {
  EXPECT_EQ(mask_of(16, {0, 1, 2, 3, 8, 10, 11}).to_string(), "0-3,8,10-11");
  EXPECT_EQ(mask_of(1, {0}).to_string(), "0");
  EXPECT_EQ(mask_of(130, {63, 64}).to_string(), "63-64");
  EXPECT_EQ(mask_of(130, {0, 2, 4, 129}).to_string(), "0,2,4,129");
  CpuMask m(8192);
  m.set_all();
  m.clear(4096);
  EXPECT_EQ(m.to_string(), "0-4095,4097-8191");
}

// ---------------------------------------------------------------------------
// Text in

TEST(CpuMaskParse, Basics) {
  EXPECT_EQ(parse_ok("0-3,8,10-11", 16), mask_of(16, {0, 1, 2, 3, 8, 10, 11}));
  EXPECT_EQ(parse_ok("5", 8), mask_of(8, {5}));
  EXPECT_EQ(parse_ok("3-3", 8), mask_of(8, {3}));
  EXPECT_EQ(parse_ok("8,0-1", 16).to_string(), "0-1,8");  // any order
  EXPECT_EQ(parse_ok("0-3,2-5", 16).to_string(), "0-5");  // overlap
  EXPECT_EQ(parse_ok("007", 16).to_string(), "7");        // leading zeros, as the kernel
  EXPECT_EQ(parse_ok("0", 1).to_string(), "0");
  EXPECT_EQ(parse_ok("0-8191", 8192).weight(), 8192u);
  EXPECT_EQ(parse_ok("0-3", 8).capacity(), 8u);
}

TEST(CpuMaskParse, EmptyAndBlankTextGiveEmptyMask) {
  for (std::string_view text : {"", " ", "\n", " \t\n", "\r\n"}) {
    CpuMask m = parse_ok(text, 64);
    EXPECT_TRUE(m.empty());
    EXPECT_EQ(m.capacity(), 64u);
  }
}

TEST(CpuMaskParse, WhitespaceAndTrailingNewline) {
  EXPECT_EQ(parse_ok("0-3\n", 8).to_string(), "0-3");  // as read from sysfs
  EXPECT_EQ(parse_ok("  0-3,5 \n", 8).to_string(), "0-3,5");
  EXPECT_EQ(parse_ok("0-1, 4 ,\t6", 8).to_string(), "0-1,4,6");  // blanks around groups
}

TEST(CpuMaskParse, LastIdN) {
  EXPECT_EQ(parse_ok("N", 64).to_string(), "63");
  EXPECT_EQ(parse_ok("0-N", 64).to_string(), "0-63");
  EXPECT_EQ(parse_ok("N-N", 1).to_string(), "0");
  EXPECT_EQ(parse_ok("60-N", 64).to_string(), "60-63");
  EXPECT_EQ(parse_ok("0-N:1/N", 5).to_string(), "0,4");  // N works in patterns too
}

TEST(CpuMaskParse, AllKeyword) {
  EXPECT_TRUE(parse_ok("all", 65).full());
  EXPECT_TRUE(parse_ok("ALL\n", 3).full());
  EXPECT_EQ(parse_ok("all:1/2", 8).to_string(), "0,2,4,6");
  EXPECT_EQ(parse_ok("all:3", 8).to_string(), "0,3,6");
}

TEST(CpuMaskParse, GroupPatterns) {
  // The kernel's documented example (lib/bitmap-str.c).
  EXPECT_EQ(parse_ok("0-1023:2/256", 1024).to_string(), "0-1,256-257,512-513,768-769");
  EXPECT_EQ(parse_ok("9-38:4/10", 64).to_string(), "9-12,19-22,29-32");
  EXPECT_EQ(parse_ok("0-5:3/3", 8).to_string(), "0-5");
  EXPECT_EQ(parse_ok("0-6:2/3", 8).to_string(), "0-1,3-4,6");   // last block cut at B
  EXPECT_EQ(parse_ok("0-3:1/4000000000", 8).to_string(), "0");  // huge group is one block
  EXPECT_EQ(parse_ok("2-2:1/1", 8).to_string(), "2");
}

TEST(CpuMaskParse, StrideShorthandIsCpuhpExtension) {
  EXPECT_EQ(parse_ok("0-15:2", 16).to_string(), "0,2,4,6,8,10,12,14");
  EXPECT_EQ(parse_ok("1-15:4", 16).to_string(), "1,5,9,13");
  EXPECT_EQ(parse_ok("0-15:1", 16).to_string(), "0-15");
  EXPECT_EQ(parse_ok("0-15:2", 16), parse_ok("0-15:1/2", 16));
  EXPECT_EQ(parse_ok("0-N:64", 8192).weight(), 128u);
}

TEST(CpuMaskParse, PatternsMatchReferenceForRandomRegions) {
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    const unsigned cap = std::uniform_int_distribution<unsigned>(1, 300)(rng);
    const unsigned a = std::uniform_int_distribution<unsigned>(0, cap - 1)(rng);
    const unsigned b = std::uniform_int_distribution<unsigned>(a, cap - 1)(rng);
    const unsigned g = std::uniform_int_distribution<unsigned>(1, 70)(rng);
    const unsigned u = std::uniform_int_distribution<unsigned>(1, g)(rng);
    const std::string text = std::to_string(a) + "-" + std::to_string(b) + ":" +
                             std::to_string(u) + "/" + std::to_string(g);
    CpuMask expected(cap);
    for (unsigned cpu = a; cpu <= b; ++cpu) {
      if ((cpu - a) % g < u) expected.set(cpu);
    }
    EXPECT_EQ(parse_ok(text, cap), expected) << text << " capacity " << cap;
  }
}

TEST(CpuMaskParse, RoundTripRandomMasks) {
  std::mt19937 rng(42);
  for (unsigned cap : kCapacities) {
    for (int i = 0; i < 40; ++i) {
      const double density = std::uniform_real_distribution<double>(0, 1)(rng);
      CpuMask m =
          random_mask(cap, rng, i % 10 == 0 ? (i % 20 == 0 ? 0.0 : 1.0) : density);
      const std::string text = m.to_string();
      Result<CpuMask> back = CpuMask::parse(text, cap);
      ASSERT_TRUE(back.ok()) << back.error().message();
      EXPECT_EQ(*back, m) << text;
      EXPECT_EQ(back->to_string(), text);
    }
  }
}

TEST(CpuMaskParse, ErrorMessageFormat) {
  Result<CpuMask> r = CpuMask::parse("0-3,5-2", 64);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
  EXPECT_EQ(
      r.error().message(),
      "cpulist \"0-3,5-2\": group \"5-2\" at offset 4: range end 2 is below start 5");
}

struct BadCase {
  std::string text;
  unsigned capacity;
  Errc code;
  std::string group;   // the offending group as quoted in the message
  std::size_t offset;  // its offset
  std::string reason;  // a piece of the reason
};

TEST(CpuMaskParse, ErrorsNameTextGroupOffsetAndReason) {
  const Errc kInv = Errc::kInvalidArgument, kRange = Errc::kOutOfRange;
  const std::vector<BadCase> cases = {
      // empty groups
      {",,", 64, kInv, "", 0, "empty group"},
      {"1,", 64, kInv, "", 2, "empty group"},
      {",1", 64, kInv, "", 0, "empty group"},
      {"1,,2", 64, kInv, "", 2, "empty group"},
      {"1, ,2", 64, kInv, "", 3, "empty group"},
      // missing bounds
      {"3-", 64, kInv, "3-", 0, "missing range end"},
      {"-3", 64, kInv, "-3", 0, "missing range start"},
      {"0,-", 64, kInv, "-", 2, "missing range start"},
      {"0-3:", 64, kInv, "0-3:", 0, "missing used count"},
      {"0-3:1/", 64, kInv, "0-3:1/", 0, "missing group size"},
      // reversed
      {"5-3", 64, kInv, "5-3", 0, "range end 3 is below start 5"},
      {"70-65", 64, kInv, "70-65", 0,
       "below start"},  // shape before range, as the kernel
      // beyond capacity
      {"64", 64, kRange, "64", 0, "CPU 64 is out of range (capacity 64)"},
      {"0-3,60-64", 64, kRange, "60-64", 4, "CPU 64 is out of range"},
      {"1", 1, kRange, "1", 0, "capacity 1"},
      // overflow
      {"99999999999999999999", 64, kRange, "99999999999999999999", 0, "too large"},
      {"4294967296", 64, kRange, "4294967296", 0, "number 4294967296 is too large"},
      {"4294967295", 64, kRange, "4294967295", 0, "CPU 4294967295 is out of range"},
      {"0-3:1/99999999999999999999", 64, kRange, "0-3:1/99999999999999999999", 0,
       "too large"},
      // junk
      {"abc", 64, kInv, "abc", 0, "expected a CPU number or 'N' at offset 0, found 'a'"},
      {"1x", 64, kInv, "1x", 0, "unexpected character 'x' at offset 1"},
      {"0-3:0/4", 64, kInv, "0-3:0/4", 0, "used count 0 must be at least 1"},
      {"0-3:5/4", 64, kInv, "0-3:5/4", 0, "used count 5 exceeds group size 4"},
      {"0-3:2/0", 64, kInv, "0-3:2/0", 0, "group size 0 must be at least 1"},
      {"0-15:0", 64, kInv, "0-15:0", 0, "stride 0 must be at least 1"},
      {"0-3:1/2/3", 64, kInv, "0-3:1/2/3", 0, "unexpected character '/'"},
      {"0-3:1:2", 64, kInv, "0-3:1:2", 0, "unexpected character ':'"},
      {"3:1/2", 64, kInv, "3:1/2", 0, "unexpected character ':'"},  // as the kernel
      {"0-3-5", 64, kInv, "0-3-5", 0, "unexpected character '-'"},
      {"1 2", 64, kInv, "1 2", 0, "unexpected character ' ' at offset 1"},
      {"0 - 3", 64, kInv, "0 - 3", 0, "unexpected character ' '"},
      {"+1", 64, kInv, "+1", 0, "found '+'"},
      {"n", 64, kInv, "n", 0, "found 'n'"},
      {"N5", 64, kInv, "N5", 0, "unexpected character '5'"},
      {"0-x", 64, kInv, "0-x", 0, "expected a range end"},
      {"alle", 64, kInv, "alle", 0, "unexpected character 'e'"},
      {"0-3;4", 64, kInv, "0-3;4", 0, "unexpected character ';'"},
      {"0x10", 64, kInv, "0x10", 0, "unexpected character 'x'"},
      {"1\n2", 64, kInv, "1\\n2", 0, "unexpected character '\\n'"},
      {"  7,  zz", 64, kInv, "zz", 6, "found 'z'"},
  };
  for (const BadCase& c : cases) {
    Result<CpuMask> r = CpuMask::parse(c.text, c.capacity);
    ASSERT_FALSE(r.ok()) << "accepted \"" << c.text << "\"";
    const std::string& msg = r.error().message();
    EXPECT_EQ(r.error().code(), c.code) << msg;
    const std::string group =
        "group \"" + c.group + "\" at offset " + std::to_string(c.offset) + ": ";
    EXPECT_TRUE(contains(msg, group)) << msg << "\n  wanted: " << group;
    EXPECT_TRUE(contains(msg, c.reason)) << msg << "\n  wanted: " << c.reason;
    if (c.text.find('\n') == std::string::npos) {
      EXPECT_EQ(msg.rfind("cpulist \"" + c.text + "\": ", 0), 0u) << msg;
    }
  }
}

TEST(CpuMaskParse, BadCapacityIsAnError) {
  for (unsigned cap : {0u, kMaxCpus + 1}) {
    Result<CpuMask> r = CpuMask::parse("0", cap);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
    EXPECT_TRUE(contains(r.error().message(), "capacity " + std::to_string(cap)))
        << r.error().message();
    EXPECT_TRUE(contains(r.error().message(), "cpulist \"0\"")) << r.error().message();
  }
}

TEST(CpuMaskParse, EmbeddedNulAndBinaryAreEscapedInMessages) {
  const std::string text(
      "1\0"
      "2",
      3);
  Result<CpuMask> r = CpuMask::parse(text, 64);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kInvalidArgument);
  EXPECT_TRUE(contains(r.error().message(), "cpulist \"1\\x002\""))
      << r.error().message();

  Result<CpuMask> r2 = CpuMask::parse("\xff", 64);
  ASSERT_FALSE(r2.ok());
  EXPECT_TRUE(contains(r2.error().message(), "\\xff")) << r2.error().message();
}

TEST(CpuMaskParse, HugeTextIsCutInTheMessage) {
  std::string text(100000, '1');
  Result<CpuMask> r = CpuMask::parse(text, 64);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), Errc::kOutOfRange);
  EXPECT_LT(r.error().message().size(), 1000u);
  EXPECT_TRUE(contains(r.error().message(), "(100000 bytes)")) << r.error().message();
}

TEST(CpuMaskParse, RandomBytesNeverCrash) {
  std::mt19937 rng(12345);
  const std::string alphabet = "0123456789-,:/N \n x";
  std::uniform_int_distribution<int> len_dist(0, 16);
  std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<int> percent(0, 99);
  const unsigned caps[] = {1, 2, 63, 64, 65, 1000, 8192};
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string text;
    const int len = len_dist(rng);
    for (int k = 0; k < len; ++k) {
      text += percent(rng) < 5 ? static_cast<char>(byte(rng)) : alphabet[pick(rng)];
    }
    const unsigned cap = caps[static_cast<std::size_t>(i) % std::size(caps)];
    Result<CpuMask> r = CpuMask::parse(text, cap);
    if (r.ok()) {
      ++accepted;
      ASSERT_EQ(r->capacity(), cap);
      Result<CpuMask> again = CpuMask::parse(r->to_string(), cap);
      ASSERT_TRUE(again.ok());
      ASSERT_EQ(*again, *r);
    } else {
      const Errc code = r.error().code();
      ASSERT_TRUE(code == Errc::kInvalidArgument || code == Errc::kOutOfRange);
      ASSERT_EQ(r.error().message().rfind("cpulist \"", 0), 0u);
      ASSERT_TRUE(contains(r.error().message(), "group \"")) << r.error().message();
    }
  }
  EXPECT_GT(accepted, 100);  // the alphabet does produce valid lists too
}

// ---------------------------------------------------------------------------
// Concurrency

TEST(CpuMaskConcurrency, DisjointWritersAndAWalkerLoseNoBits) {
  constexpr unsigned kCap = 1000;
  constexpr int kRounds = 200;
  CpuMask m(kCap);
  std::atomic<bool> done{false};
  std::atomic<long> walks{0};

  // Writer t owns the CPUs with cpu % 2 == t. Each round sets all its CPUs then
  // clears those with cpu % 3 == 0; the end state is known exactly.
  auto writer = [&](unsigned parity) {
    while (walks.load(std::memory_order_relaxed) == 0) std::this_thread::yield();
    for (int round = 0; round < kRounds; ++round) {
      for (unsigned cpu = parity; cpu < kCap; cpu += 2) m.set(cpu);
      for (unsigned cpu = parity; cpu < kCap; cpu += 2) {
        if (cpu % 3 == 0) m.clear(cpu);
      }
    }
  };
  std::thread walker([&] {
    while (!done.load(std::memory_order_relaxed)) {
      unsigned prev = 0, count = 0;
      bool first = true;
      for (unsigned cpu : m) {
        ASSERT_LT(cpu, kCap);
        ASSERT_TRUE(first || cpu > prev);  // strictly ascending, never repeats
        prev = cpu;
        first = false;
        ++count;
      }
      ASSERT_LE(count, kCap);
      (void)m.weight();
      (void)m.to_string();
      walks.fetch_add(1, std::memory_order_relaxed);
    }
  });
  std::thread w0(writer, 0u), w1(writer, 1u);
  w0.join();
  w1.join();
  done.store(true, std::memory_order_relaxed);
  walker.join();

  CpuMask expected(kCap);
  for (unsigned cpu = 0; cpu < kCap; ++cpu) {
    if (cpu % 3 != 0) expected.set(cpu);
  }
  EXPECT_EQ(m, expected);
  EXPECT_GT(walks.load(), 0);
}

TEST(CpuMaskConcurrency, BulkOpsDoNotLoseConcurrentSingleBitWrites) {
  // The bulk writer churns CPUs 0..31 while the toggler sets and clears 32..63:
  // they share word 0, so a bulk op that loaded and stored whole words instead
  // of doing atomic read-modify-writes would lose or resurrect toggler bits,
  // which the toggler sees in the previous values that set()/clear() return.
  constexpr unsigned kCap = 128;
  CpuMask m(kCap);
  CpuMask low(kCap);  // CPUs 0..31
  for (unsigned cpu = 0; cpu < 32; ++cpu) low.set(cpu);
  CpuMask not_low(kCap);
  not_low.set_all();
  not_low.and_not(low);
  std::atomic<bool> bulk_running{false}, done{false};
  std::thread bulk([&] {
    bulk_running.store(true);
    while (!done.load(std::memory_order_relaxed)) {
      m |= low;
      m &= not_low;
      m |= low;
      m.and_not(low);
    }
  });
  while (!bulk_running.load()) std::this_thread::yield();
  int wrong = 0;
  for (int round = 0; round < 200000; ++round) {
    const unsigned cpu = 32 + static_cast<unsigned>(round) % 32;
    if (m.set(cpu)) ++wrong;     // was clear: only this thread touches it
    if (!m.clear(cpu)) ++wrong;  // was set
  }
  for (unsigned cpu = 32; cpu < kCap; ++cpu) m.set(cpu);
  done.store(true);
  bulk.join();
  EXPECT_EQ(wrong, 0);
  EXPECT_EQ(m, not_low);
}

// The per-bit publication contract: data written before set() is visible to a
// reader that sees the bit. ThreadSanitizer flags a race here if set() were not
// release or the walk not acquire.
TEST(CpuMaskConcurrency, SeeingABitPublishesTheDataWrittenBeforeSet) {
  constexpr unsigned kCap = 256;
  CpuMask online(kCap);
  std::vector<unsigned> data(kCap, 0);  // plain, non-atomic per-CPU data
  std::thread reader([&] {
    unsigned seen = 0;
    while (seen < kCap) {
      seen = 0;
      for (unsigned cpu : online) {
        ASSERT_EQ(data[cpu], cpu + 1);
        ++seen;
      }
      for (unsigned cpu = 0; cpu < kCap; ++cpu) {
        if (online.test(cpu)) {
          ASSERT_EQ(data[cpu], cpu + 1);
        }
      }
    }
  });
  for (unsigned cpu = kCap; cpu-- > 0;) {
    data[cpu] = cpu + 1;
    online.set(cpu);
  }
  reader.join();
  EXPECT_TRUE(online.full());
}

}  // namespace
}  // namespace cpuhp
