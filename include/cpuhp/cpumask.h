// cpuhp/cpumask.h — a fixed-capacity set of CPU ids, safe to change bit by bit
// while other threads read it; Linux cpulist text ("0-3,8") in and out.
//
// What it is
//   `CpuMask` is the user-space `struct cpumask`: a bitmap of `capacity()` CPU
//   ids (1..kMaxCpus, chosen at run time, fixed for the life of the object),
//   stored as an array of `std::atomic<uint64_t>` words. Like the kernel's
//   `nr_cpu_ids` convention, the searches (`first`, `next`, `last`,
//   `first_zero`) return `capacity()` when there is no answer.
//
// Thread-safety
//   * `set`, `clear`, `test`, the searches, iteration, `weight`, `empty`,
//     `full`, `to_string`, `==`, `intersects`, `is_subset_of` and the bulk
//     writers (`set_all`, `clear_all`, `&=`, `|=`, `and_not`) may all run
//     concurrently on one mask from any number of threads.
//   * Each single-bit operation is atomic. Bulk operations are atomic per
//     64-bit word, not as a whole: a concurrent reader may see some words
//     before and some after. Likewise a walk (iteration, `weight`,
//     `to_string`, a copy) loads each word once, so it never sees a torn word
//     but is not a snapshot of the whole mask while writers run. A reader that
//     needs a stable mask must exclude writers (the hotplug read lock).
//   * Copy-assigning between masks of the SAME capacity is a series of
//     per-word stores and is safe against concurrent readers of the target.
//     Everything that replaces the storage — construction, destruction, move,
//     copy-assignment between different capacities — needs exclusive access.
//
// Memory ordering: "RCU semantics per bit"
//   `set()` and `clear()` are read-modify-writes with release (acq_rel)
//   ordering; `test()`, the searches and iteration load with acquire. So a
//   thread that sees a bit set through `test()` or a walk also sees everything
//   the setting thread wrote before its `set()`. This is the contract the
//   hotplug code relies on: it builds a CPU's per-CPU data, then sets the CPU's
//   online bit, and a reader that finds the bit set may use the data (for as
//   long as its RCU read guard lasts; the offline path clears the bit and waits
//   a grace period before freeing). The acquire half of set()/clear() lets the
//   caller trust the returned previous value the same way: a `clear()` that
//   returns true has seen the writes that preceded the matching `set()`.
//   There is no ordering promise between different bits beyond these pairs.
//
// Text
//   `to_string()` writes the Linux cpulist format; `parse()` reads it (see
//   there for the accepted grammar and the cpuhp additions). Bad text is a
//   returned `Error`, never an exception, crash or undefined behaviour.
//
// Errors
//   A capacity outside 1..kMaxCpus in the constructor throws
//   std::invalid_argument; `set`/`clear` of a CPU >= capacity() throw
//   std::out_of_range (both are programming errors). `test` of such a CPU is
//   simply false. `parse` reports through `Result`.
#pragma once

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>

#include "cpuhp/error.h"

namespace cpuhp {

// Upper bound for a mask's capacity (the kernel's CONFIG_NR_CPUS maximum).
inline constexpr unsigned kMaxCpus = 8192;

class CpuMask {
 public:
  class const_iterator;
  using iterator = const_iterator;
  using value_type = unsigned;

  // An empty mask of `capacity` CPU ids, 0..capacity-1.
  // Throws std::invalid_argument (naming the capacity) unless 1 <= capacity <= kMaxCpus.
  explicit CpuMask(unsigned capacity);

  // Copies take a snapshot of `other`, one acquire load per word (see the .cpp).
  CpuMask(const CpuMask& other);
  CpuMask& operator=(const CpuMask& other);
  // A moved-from mask may only be destroyed or assigned to.
  CpuMask(CpuMask&& other) noexcept;
  CpuMask& operator=(CpuMask&& other) noexcept;
  ~CpuMask();

  unsigned capacity() const noexcept { return capacity_; }

  // Whether `cpu` is in the mask; false for cpu >= capacity().
  // Acquire: pairs with the release in set() (RCU semantics per bit, above).
  bool test(unsigned cpu) const noexcept {
    if (cpu >= capacity_) return false;
    return (words_[cpu / 64].load(std::memory_order_acquire) >> (cpu % 64)) & 1;
  }

  // Add / remove one CPU; return the bit's previous value. acq_rel, see above.
  // Throw std::out_of_range (naming the CPU and the capacity) if cpu >= capacity().
  bool set(unsigned cpu);
  bool clear(unsigned cpu);

  void set_all();    // every CPU 0..capacity()-1
  void clear_all();  // no CPU
  bool empty() const noexcept;
  bool full() const noexcept;
  unsigned weight() const noexcept;  // number of CPUs in the mask

  // Lowest CPU in the mask, or capacity() if empty.
  unsigned first() const noexcept { return find_from(0); }
  // Lowest CPU in the mask strictly above `cpu`, or capacity() if none
  // (also when cpu >= capacity()).
  unsigned next(unsigned cpu) const noexcept {
    if (cpu >= capacity_) return capacity_;
    return find_from(cpu + 1);  // cpu < kMaxCpus, so no overflow
  }
  unsigned first_zero() const noexcept;  // lowest CPU not in the mask, or capacity()
  unsigned last() const noexcept;        // highest CPU in the mask, or capacity()

  // Range-for over the CPUs in the mask, ascending.
  const_iterator begin() const noexcept;
  const_iterator end() const noexcept;

  // Set algebra. Where capacities differ, bits beyond the other mask's capacity
  // count as zero and the result keeps this (the left) mask's capacity. Each
  // word of *this is updated with one atomic read-modify-write, so concurrent
  // set()/clear() of other bits in the same word are never lost.
  CpuMask& operator&=(const CpuMask& other);
  CpuMask& operator|=(const CpuMask& other);
  CpuMask& and_not(const CpuMask& other);  // *this &= ~other
  // Same capacity and same CPUs.
  friend bool operator==(const CpuMask& a, const CpuMask& b) noexcept;
  bool intersects(const CpuMask& other) const noexcept;    // any CPU in both
  bool is_subset_of(const CpuMask& other) const noexcept;  // every CPU also in other

  // Linux cpulist text: ascending ranges, "0-3,8,10-11"; "" for an empty mask.
  std::string to_string() const;

  // Reads Linux cpulist text into a mask of `capacity` CPUs, as the kernel's
  // bitmap_parselist() does (the format of /sys/devices/system/cpu/online,
  // cpuset.cpus, isolcpus=, taskset -c):
  //
  //   text   := ws* [ group ( "," group )* ] ws*      ws: space \t \n \v \f \r
  //   group  := ws* body ws*
  //   body   := num | num "-" num [ ":" num "/" num ] | "all" [ ":" num "/" num ]
  //   num    := decimal digits | "N"                   N: the last id, capacity-1
  //
  // "A-B:U/G" takes, in each group of G CPUs starting at A, the first U, up to B
  // (1 <= U <= G); "all" is "0-N" (case-insensitive, as in the kernel).
  // cpuhp extension, not in the kernel: "A-B:S" (and "all:S") is the stride
  // shorthand for "A-B:1/S", e.g. "0-15:2" is 0,2,4,...,14.
  // Empty or all-blank text gives an empty mask; a trailing "\n" (sysfs) is fine.
  //
  // Stricter than the kernel, which skips empty groups and treats blanks as
  // separators: ",1", "1,", "1,,2" (empty group) and "1 2" (blank inside a
  // group) are errors here, and so is "A-B:0/G" (the kernel sets nothing).
  //
  // Errors (returned, never thrown, for any input bytes): kInvalidArgument for
  // malformed text or a capacity outside 1..kMaxCpus; kOutOfRange for a CPU id
  // >= capacity or a number too large for 32 bits. The message quotes the text,
  // the offending group and its byte offset, and the reason, e.g.
  //   cpulist "0-3,5-2": group "5-2" at offset 4: range end 2 is below start 5
  static Result<CpuMask> parse(std::string_view text, unsigned capacity);

 private:
  static constexpr unsigned kWordBits = 64;

  unsigned word_count() const noexcept { return (capacity_ + kWordBits - 1) / kWordBits; }

  // Lowest set bit at or above `bit`, or capacity_. Each word is loaded once,
  // acquire: pairs with the release in set() and the bulk writers.
  unsigned find_from(unsigned bit) const noexcept {
    if (bit >= capacity_) return capacity_;
    unsigned w = bit / kWordBits;
    std::uint64_t bits = words_[w].load(std::memory_order_acquire) &
                         (~std::uint64_t{0} << (bit % kWordBits));
    const unsigned n = word_count();
    while (bits == 0) {
      if (++w >= n) return capacity_;
      bits = words_[w].load(std::memory_order_acquire);
    }
    return w * kWordBits + static_cast<unsigned>(std::countr_zero(bits));
  }

  // Invariant: bits at or above capacity_ in the last word are always zero,
  // so searches and popcounts need no masking.
  unsigned capacity_ = 0;
  std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
};

// Forward iterator over the CPUs in a mask. It holds the remaining bits of the
// current word (loaded once, acquire) and moves a word at a time with
// countr_zero, so concurrent set()/clear() never make it skip backwards or
// yield an id twice: ids come out strictly ascending and below capacity().
// A CPU set or cleared during the walk may or may not be seen. The mask must
// outlive the iterator.
class CpuMask::const_iterator {
 public:
  using iterator_category = std::forward_iterator_tag;
  using iterator_concept = std::forward_iterator_tag;
  using value_type = unsigned;
  using difference_type = std::ptrdiff_t;
  using reference = unsigned;
  using pointer = void;

  const_iterator() = default;

  unsigned operator*() const noexcept {
    return word_ * kWordBits + static_cast<unsigned>(std::countr_zero(bits_));
  }
  const_iterator& operator++() noexcept {
    bits_ &= bits_ - 1;  // drop the CPU just yielded
    if (bits_ == 0) next_word();
    return *this;
  }
  const_iterator operator++(int) noexcept {
    const_iterator old = *this;
    ++*this;
    return old;
  }
  // A position is the word and the bits of it not yet yielded; end() is one
  // past the last word, with none. Comparing these (bits first: non-zero bits
  // are never end(), which the compiler then knows inside a walk), not a CPU
  // id computed on every step, keeps a walk as tight as a plain bitmap's.
  friend bool operator==(const const_iterator& a, const const_iterator& b) noexcept {
    return a.bits_ == b.bits_ && a.word_ == b.word_;
  }

 private:
  friend class CpuMask;
  // begin() of `word_count` words.
  const_iterator(const std::atomic<std::uint64_t>* words, unsigned word_count) noexcept
      : words_(words), word_count_(word_count) {
    if (word_count_ == 0) return;
    bits_ = words_[0].load(std::memory_order_acquire);  // pairs with set()'s release
    if (bits_ == 0) next_word();
  }
  // end() of `word_count` words.
  explicit const_iterator(unsigned word_count) noexcept
      : word_count_(word_count), word_(word_count) {}
  // Moves to the next word with a bit set, or to end().
  void next_word() noexcept {
    while (++word_ < word_count_) {
      bits_ =
          words_[word_].load(std::memory_order_acquire);  // pairs with set()'s release
      if (bits_ != 0) return;
    }
    bits_ = 0;
  }

  const std::atomic<std::uint64_t>* words_ = nullptr;
  unsigned word_count_ = 0;
  unsigned word_ = 0;
  std::uint64_t bits_ = 0;  // bits of words_[word_] not yet yielded
};

inline CpuMask::const_iterator CpuMask::begin() const noexcept {
  return const_iterator(words_.get(), word_count());
}
inline CpuMask::const_iterator CpuMask::end() const noexcept {
  return const_iterator(word_count());
}

// Snapshot of `a` combined with `b`; the result has a's capacity.
CpuMask operator&(const CpuMask& a, const CpuMask& b);
CpuMask operator|(const CpuMask& a, const CpuMask& b);

}  // namespace cpuhp
