// CpuMask: the out-of-line parts — storage, bulk operations and cpulist text.
// The contract (thread-safety, memory ordering) is in include/cpuhp/cpumask.h.
#include "cpuhp/cpumask.h"

#include <algorithm>
#include <cstdio>
#include <stdexcept>
#include <utility>
#include <vector>

namespace cpuhp {
namespace {

using Word = std::uint64_t;
constexpr unsigned kBits = 64;
constexpr Word kAllOnes = ~Word{0};

static_assert(std::atomic<Word>::is_always_lock_free,
              "CpuMask needs lock-free 64-bit atomics for its reader guarantees");

// The valid bits of word `w` in a mask of `capacity` bits.
Word valid_bits(unsigned capacity, unsigned w) {
  const unsigned low = w * kBits;
  if (capacity >= low + kBits) return kAllOnes;
  return (Word{1} << (capacity - low)) - 1;  // capacity - low is 1..63 here
}

std::unique_ptr<std::atomic<Word>[]> allocate(unsigned capacity) {
  // make_unique value-initialises: every word starts at zero.
  return std::make_unique<std::atomic<Word>[]>((capacity + kBits - 1) / kBits);
}

[[noreturn]] void throw_bad_capacity(unsigned capacity) {
  throw std::invalid_argument("CpuMask capacity " + std::to_string(capacity) +
                              " is outside 1.." + std::to_string(kMaxCpus));
}

[[noreturn]] void throw_out_of_range(unsigned cpu, unsigned capacity) {
  throw std::out_of_range("CPU " + std::to_string(cpu) + " is out of range (capacity " +
                          std::to_string(capacity) + ")");
}

}  // namespace

CpuMask::CpuMask(unsigned capacity) : capacity_(capacity) {
  if (capacity == 0 || capacity > kMaxCpus) throw_bad_capacity(capacity);
  words_ = allocate(capacity);
}

// A copy loads each source word once with acquire (pairs with the release in
// the source's set()). Relaxed would be enough for the bits alone, but acquire
// carries the per-bit publication guarantee over to the copy: whoever reads a
// bit in the copy (after the copy itself has been handed over properly) also
// sees the per-CPU data published before that bit was set. It costs nothing on
// x86. The stores into the new, still private object can be relaxed.
CpuMask::CpuMask(const CpuMask& other) : capacity_(other.capacity_) {
  if (capacity_ == 0) return;  // copy of a moved-from mask: stays empty-handed
  words_ = allocate(capacity_);
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    words_[w].store(other.words_[w].load(std::memory_order_acquire),
                    std::memory_order_relaxed);
  }
}

CpuMask& CpuMask::operator=(const CpuMask& other) {
  if (this == &other) return *this;
  if (capacity_ != other.capacity_ || !words_) {
    // New storage: the caller guarantees exclusive access (see the header).
    CpuMask copy(other);
    *this = std::move(copy);
    return *this;
  }
  // Same capacity: update in place, one word at a time, so that concurrent
  // readers of *this stay safe. Acquire load pairs with other's set(); release
  // store pairs with the acquire loads of our own readers (test, walks).
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    words_[w].store(other.words_[w].load(std::memory_order_acquire),
                    std::memory_order_release);
  }
  return *this;
}

CpuMask::CpuMask(CpuMask&& other) noexcept
    : capacity_(std::exchange(other.capacity_, 0)), words_(std::move(other.words_)) {}

CpuMask& CpuMask::operator=(CpuMask&& other) noexcept {
  if (this != &other) {
    capacity_ = std::exchange(other.capacity_, 0);
    words_ = std::move(other.words_);
  }
  return *this;
}

CpuMask::~CpuMask() = default;

bool CpuMask::set(unsigned cpu) {
  if (cpu >= capacity_) throw_out_of_range(cpu, capacity_);
  const Word bit = Word{1} << (cpu % kBits);
  // Release pairs with the acquire loads in test()/walks: whatever this thread
  // wrote before (the CPU's per-CPU data) is visible to a reader that sees the
  // bit. Acquire pairs with the release of a previous clear()/set() of the
  // word, so the returned old value can be trusted the same way.
  return words_[cpu / kBits].fetch_or(bit, std::memory_order_acq_rel) & bit;
}

bool CpuMask::clear(unsigned cpu) {
  if (cpu >= capacity_) throw_out_of_range(cpu, capacity_);
  const Word bit = Word{1} << (cpu % kBits);
  // acq_rel as in set(): the acquire half pairs with the set() that published
  // the bit, so a clear() that returns true sees the setter's writes (e.g. may
  // go on to retire the CPU's data after a grace period).
  return words_[cpu / kBits].fetch_and(~bit, std::memory_order_acq_rel) & bit;
}

void CpuMask::set_all() {
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    // Release pairs with readers' acquire loads, as in set().
    words_[w].store(valid_bits(capacity_, w), std::memory_order_release);
  }
}

void CpuMask::clear_all() {
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    words_[w].store(0, std::memory_order_release);  // pairs as in clear()
  }
}

bool CpuMask::empty() const noexcept {
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    if (words_[w].load(std::memory_order_acquire) != 0) return false;  // pairs with set()
  }
  return true;
}

bool CpuMask::full() const noexcept {
  if (capacity_ == 0) return false;
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    // Acquire pairs with set(): "full" then means every CPU's data is visible.
    if (words_[w].load(std::memory_order_acquire) != valid_bits(capacity_, w))
      return false;
  }
  return true;
}

unsigned CpuMask::weight() const noexcept {
  unsigned count = 0;
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    count += static_cast<unsigned>(
        std::popcount(words_[w].load(std::memory_order_acquire)));  // pairs with set()
  }
  return count;
}

unsigned CpuMask::first_zero() const noexcept {
  for (unsigned w = 0, n = word_count(); w < n; ++w) {
    // Acquire pairs with clear()'s release, as for any reader of the mask.
    const Word zeros =
        ~words_[w].load(std::memory_order_acquire) & valid_bits(capacity_, w);
    if (zeros != 0) return w * kBits + static_cast<unsigned>(std::countr_zero(zeros));
  }
  return capacity_;
}

unsigned CpuMask::last() const noexcept {
  for (unsigned w = word_count(); w-- > 0;) {
    const Word bits = words_[w].load(std::memory_order_acquire);  // pairs with set()
    if (bits != 0)
      return w * kBits + (kBits - 1) - static_cast<unsigned>(std::countl_zero(bits));
  }
  return capacity_;
}

// For the algebra below: `other`'s words are loaded with acquire (pairs with
// other's set()), and *this is changed with acq_rel read-modify-writes
// (release pairs with our readers' acquire loads, acquire with earlier writers
// of the word). Words of *this beyond other's capacity count other as zero.

CpuMask& CpuMask::operator&=(const CpuMask& other) {
  const unsigned n = word_count(), m = other.word_count();
  for (unsigned w = 0; w < n; ++w) {
    const Word o = w < m ? other.words_[w].load(std::memory_order_acquire) : 0;
    words_[w].fetch_and(o, std::memory_order_acq_rel);
  }
  return *this;
}

CpuMask& CpuMask::operator|=(const CpuMask& other) {
  const unsigned n = std::min(word_count(), other.word_count());
  for (unsigned w = 0; w < n; ++w) {
    // Mask to our capacity: other may be larger, and our padding bits stay zero.
    const Word o =
        other.words_[w].load(std::memory_order_acquire) & valid_bits(capacity_, w);
    if (o != 0) words_[w].fetch_or(o, std::memory_order_acq_rel);
  }
  return *this;
}

CpuMask& CpuMask::and_not(const CpuMask& other) {
  const unsigned n = std::min(word_count(), other.word_count());
  for (unsigned w = 0; w < n; ++w) {
    const Word o = other.words_[w].load(std::memory_order_acquire);
    if (o != 0) words_[w].fetch_and(~o, std::memory_order_acq_rel);
  }
  return *this;
}

bool operator==(const CpuMask& a, const CpuMask& b) noexcept {
  if (a.capacity_ != b.capacity_) return false;
  if (&a == &b) return true;
  for (unsigned w = 0, n = a.word_count(); w < n; ++w) {
    // Acquire on both: pairs with each mask's set().
    if (a.words_[w].load(std::memory_order_acquire) !=
        b.words_[w].load(std::memory_order_acquire)) {
      return false;
    }
  }
  return true;
}

bool CpuMask::intersects(const CpuMask& other) const noexcept {
  const unsigned n = std::min(word_count(), other.word_count());
  for (unsigned w = 0; w < n; ++w) {
    // Acquire on both: pairs with each mask's set().
    if ((words_[w].load(std::memory_order_acquire) &
         other.words_[w].load(std::memory_order_acquire)) != 0) {
      return true;
    }
  }
  return false;
}

bool CpuMask::is_subset_of(const CpuMask& other) const noexcept {
  const unsigned n = word_count(), m = other.word_count();
  for (unsigned w = 0; w < n; ++w) {
    // Acquire on both: pairs with each mask's set().
    const Word mine = words_[w].load(std::memory_order_acquire);
    const Word theirs = w < m ? other.words_[w].load(std::memory_order_acquire) : 0;
    if ((mine & ~theirs) != 0) return false;
  }
  return true;
}

CpuMask operator&(const CpuMask& a, const CpuMask& b) {
  CpuMask result(a);
  result &= b;
  return result;
}

CpuMask operator|(const CpuMask& a, const CpuMask& b) {
  CpuMask result(a);
  result |= b;
  return result;
}

std::string CpuMask::to_string() const {
  // Take a snapshot first (one acquire load per word, pairing with set()), so
  // the runs printed are consistent even while writers run.
  const unsigned n = word_count();
  std::vector<Word> snap(n);
  for (unsigned w = 0; w < n; ++w) snap[w] = words_[w].load(std::memory_order_acquire);
  auto bit = [&](unsigned cpu) { return (snap[cpu / kBits] >> (cpu % kBits)) & 1; };

  std::string out;
  unsigned cpu = 0;
  while (cpu < capacity_) {
    // Skip a whole zero word at a time, then bit by bit to the run's start.
    if (cpu % kBits == 0 && snap[cpu / kBits] == 0) {
      cpu += kBits;
      continue;
    }
    if (!bit(cpu)) {
      ++cpu;
      continue;
    }
    const unsigned start = cpu;
    while (cpu < capacity_ && bit(cpu)) ++cpu;
    if (!out.empty()) out += ',';
    out += std::to_string(start);
    if (cpu - 1 > start) {  // the kernel prints runs of two as "a-b" too
      out += '-';
      out += std::to_string(cpu - 1);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// parse: Linux cpulist text.

namespace {

bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Text for an error message: quoted, C-escaped, cut after a sane length so a
// megabyte of garbage does not become a megabyte of message.
std::string quote(std::string_view s) {
  constexpr std::size_t kMaxShown = 120;
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c >= 0x20 && c < 0x7f) {
          out += static_cast<char>(c);
        } else {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        }
    }
  }
  if (s.size() > kMaxShown) out += "...";
  out += '"';
  if (s.size() > kMaxShown) out += " (" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string describe(char c) {
  if (c == '\'') return "'\\''";
  std::string q = quote(std::string_view(&c, 1));  // "x" -> 'x'
  q.front() = '\'';
  q.back() = '\'';
  return q;
}

// One group's parse failure: code, reason. The caller adds text and group.
struct GroupError {
  Errc code;
  std::string reason;
};

// One parsed group: in each block of `group` CPUs from `start`, the first `used`,
// up to `end`. Numbers are held in 64 bits so that stepping cannot overflow.
struct Region {
  std::uint64_t start = 0, end = 0, used = 0, group = 0;
};

class GroupParser {
 public:
  // `body` is the group without surrounding blanks; `offset` is where it starts
  // in the whole text (for messages).
  GroupParser(std::string_view body, std::size_t offset, unsigned capacity)
      : s_(body), offset_(offset), last_(capacity - 1) {}

  // Parses into r; on failure fills err and returns false. body is not empty.
  bool run(Region& r, GroupError& err) {
    if (s_.size() >= 3 && lower(s_[0]) == 'a' && lower(s_[1]) == 'l' &&
        lower(s_[2]) == 'l') {
      r.start = 0;
      r.end = last_;
      p_ = 3;
      return pattern(r, err);
    }
    if (s_[p_] == '-') return fail(err, "missing range start before '-'");
    if (!number(r.start, err, "a CPU number or 'N'")) return false;
    if (at_end()) {
      r.end = r.start;
      r.used = r.group = 1;
      return true;
    }
    if (s_[p_] != '-') return unexpected(err);
    ++p_;
    if (at_end()) return fail(err, "missing range end after '-'");
    if (!number(r.end, err, "a range end (CPU number or 'N')")) return false;
    return pattern(r, err);
  }

 private:
  static char lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
  }
  bool at_end() const { return p_ >= s_.size(); }

  // After "A-B" or "all": nothing, ":U/G" or the cpuhp stride shorthand ":S".
  bool pattern(Region& r, GroupError& err) {
    if (at_end()) {
      r.used = r.group = 1;  // contiguous
      return true;
    }
    if (s_[p_] != ':') return unexpected(err);
    ++p_;
    if (at_end()) return fail(err, "missing used count (or stride) after ':'");
    std::uint64_t first = 0;
    if (!number(first, err, "a used count or stride")) return false;
    if (at_end()) {  // "A-B:S": stride S, a cpuhp extension
      if (first == 0) return fail(err, "stride 0 must be at least 1");
      r.used = 1;
      r.group = first;
      return true;
    }
    if (s_[p_] != '/') return unexpected(err);
    ++p_;
    if (at_end()) return fail(err, "missing group size after '/'");
    if (!number(r.group, err, "a group size")) return false;
    if (!at_end()) return unexpected(err);
    r.used = first;
    if (r.used == 0) return fail(err, "used count 0 must be at least 1");
    if (r.group == 0) return fail(err, "group size 0 must be at least 1");
    if (r.used > r.group) {
      return fail(err, "used count " + std::to_string(r.used) + " exceeds group size " +
                           std::to_string(r.group));
    }
    return true;
  }

  // Decimal digits or "N" (the last id). Values beyond 32 bits are an error,
  // as in the kernel (-EOVERFLOW); digits are consumed without overflowing.
  bool number(std::uint64_t& out, GroupError& err, const char* what) {
    if (at_end()) return fail(err, std::string("expected ") + what + " at the end");
    if (s_[p_] == 'N') {
      ++p_;
      out = last_;
      return true;
    }
    if (!is_digit(s_[p_])) {
      return fail(err, std::string("expected ") + what + " at offset " +
                           std::to_string(offset_ + p_) + ", found " + describe(s_[p_]));
    }
    const std::size_t begin = p_;
    std::uint64_t value = 0;
    bool overflow = false;
    for (; !at_end() && is_digit(s_[p_]); ++p_) {
      if (!overflow) {
        value = value * 10 + static_cast<unsigned>(s_[p_] - '0');
        if (value > 0xffffffffu) overflow = true;  // checked every digit: no wrap
      }
    }
    if (overflow) {
      std::string digits(s_.substr(begin, p_ - begin));
      if (digits.size() > 40) digits = digits.substr(0, 40) + "...";
      err = {Errc::kOutOfRange, "number " + digits + " is too large"};
      return false;
    }
    out = value;
    return true;
  }

  bool unexpected(GroupError& err) {
    return fail(err, "unexpected character " + describe(s_[p_]) + " at offset " +
                         std::to_string(offset_ + p_));
  }
  static bool fail(GroupError& err, std::string reason) {
    err = {Errc::kInvalidArgument, std::move(reason)};
    return false;
  }

  std::string_view s_;
  std::size_t offset_;
  std::uint64_t last_;
  std::size_t p_ = 0;
};

}  // namespace

Result<CpuMask> CpuMask::parse(std::string_view text, unsigned capacity) {
  const std::string head = "cpulist " + quote(text) + ": ";
  if (capacity == 0 || capacity > kMaxCpus) {
    return Error(Errc::kInvalidArgument, head + "capacity " + std::to_string(capacity) +
                                             " is outside 1.." +
                                             std::to_string(kMaxCpus));
  }

  // Trim blanks around the whole text (sysfs files end with "\n").
  std::size_t lo = 0, hi = text.size();
  while (lo < hi && is_blank(text[lo])) ++lo;
  while (hi > lo && is_blank(text[hi - 1])) --hi;

  // Build into plain words, then publish once; the mask is private until returned.
  std::vector<Word> bits((capacity + kBits - 1) / kBits, 0);
  auto set_range = [&](std::uint64_t a, std::uint64_t b) {  // inclusive, b < capacity
    for (std::uint64_t w = a / kBits; w <= b / kBits; ++w) {
      const std::uint64_t wlo = w * kBits, whi = wlo + kBits - 1;
      const unsigned from = static_cast<unsigned>(std::max(a, wlo) - wlo);
      const unsigned to = static_cast<unsigned>(std::min(b, whi) - wlo);
      const Word m = (to - from + 1 == kBits)
                         ? kAllOnes
                         : (((Word{1} << (to - from + 1)) - 1) << from);
      bits[w] |= m;
    }
  };

  std::size_t pos = lo;
  while (lo < hi) {  // one iteration per comma-separated group
    std::size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos || comma > hi) comma = hi;
    std::size_t b = pos, e = comma;
    while (b < e && is_blank(text[b])) ++b;
    while (e > b && is_blank(text[e - 1])) --e;
    const std::string_view body = text.substr(b, e - b);
    auto group_error = [&](Errc code, const std::string& reason) {
      return Error(code, head + "group " + quote(body) + " at offset " +
                             std::to_string(b) + ": " + reason);
    };

    if (body.empty()) {
      return group_error(
          Errc::kInvalidArgument,
          "empty group (a comma at the start or end, or two commas in a row)");
    }
    Region r;
    GroupError err{Errc::kOk, {}};
    if (!GroupParser(body, b, capacity).run(r, err))
      return group_error(err.code, err.reason);
    // Checks in the kernel's order (bitmap_check_region): shape, then range.
    if (r.start > r.end) {
      return group_error(Errc::kInvalidArgument, "range end " + std::to_string(r.end) +
                                                     " is below start " +
                                                     std::to_string(r.start));
    }
    if (r.end >= capacity) {
      return group_error(Errc::kOutOfRange, "CPU " + std::to_string(r.end) +
                                                " is out of range (capacity " +
                                                std::to_string(capacity) + ")");
    }
    if (r.used == r.group) {
      set_range(r.start, r.end);
    } else {
      // At most capacity / 2 blocks (group >= 2 here); 64-bit, so no wrap.
      for (std::uint64_t s = r.start; s <= r.end; s += r.group) {
        set_range(s, std::min(r.end, s + r.used - 1));
      }
    }

    if (comma >= hi) break;
    pos = comma + 1;
  }

  CpuMask mask(capacity);
  for (std::size_t w = 0; w < bits.size(); ++w) {
    mask.words_[w].store(bits[w], std::memory_order_relaxed);  // private until returned
  }
  return mask;
}

}  // namespace cpuhp
