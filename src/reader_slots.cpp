// SPDX-License-Identifier: MIT
// Slot claiming, thread-exit release and the writer's sum for ReaderSlotTable.
#include "cpuhp/detail/reader_slots.h"

#include <pthread.h>

#include <unordered_map>
#include <utility>
#include <vector>

#include "cpuhp/detail/mutex.h"
#include "cpuhp/detail/thread_annotations.h"
#include "cpuhp/diagnostics.h"

namespace cpuhp::detail {
namespace {

// Tables that are alive, by id. A thread that exits releases its slots only in
// tables still alive; a table being destroyed unregisters here first. The
// mutex orders the two.
struct LiveTables {
  Mutex mutex;
  std::unordered_map<std::uint64_t, ReaderSlotTable*> by_id CPUHP_GUARDED_BY(mutex);
};
LiveTables& live_tables() {
  static LiveTables* tables = new LiveTables;  // never destroyed: threads may exit late
  return *tables;
}

std::atomic<std::uint64_t> next_table_id{1};  // 0 marks an empty cache way

}  // namespace

// The slots this thread claimed (the cache holds only a few), released when
// the thread exits. It lives behind a pthread key rather than in a C++
// thread_local: glibc runs key destructors after every thread_local
// destructor, so a thread_local object of the application that takes a read
// lock in its destructor still finds its slot.
struct ThreadSlotList {
  std::vector<std::pair<std::uint64_t, ReaderSlot*>> slots;

  ReaderSlot* find(std::uint64_t id) const {
    for (auto [have, slot] : slots)
      if (have == id) return slot;
    return nullptr;
  }

  ~ThreadSlotList() {
    LiveTables& live = live_tables();
    MutexLock guard(live.mutex);
    for (auto [id, slot] : slots) {
      auto it = live.by_id.find(id);
      if (it != live.by_id.end()) it->second->release_slot(slot);
    }
  }

  // Drops entries of destroyed tables so long-lived threads that meet many
  // short-lived locks do not grow without bound.
  void prune() {
    LiveTables& live = live_tables();
    MutexLock guard(live.mutex);
    // A loop rather than std::erase_if with a lambda: the thread-safety
    // analysis cannot see that the lambda runs under the guard.
    std::size_t kept = 0;
    for (const auto& entry : slots)
      if (live.by_id.contains(entry.first)) slots[kept++] = entry;
    slots.resize(kept);
  }
};

namespace {

thread_local ThreadSlotList* tl_thread_slots = nullptr;  // trivial: no TLS destructor

void destroy_thread_slots(void* list) {
  tl_thread_slots = nullptr;
  tl_slot_cache = SlotCache{};
  delete static_cast<ThreadSlotList*>(list);
}

pthread_key_t thread_slots_key() {
  static const pthread_key_t key = [] {
    pthread_key_t k;
    if (pthread_key_create(&k, destroy_thread_slots) != 0)
      fatal("PercpuRwSemaphore", "pthread_key_create failed: cannot track reader slots");
    return k;
  }();
  return key;
}

ThreadSlotList& this_thread_slots() {
  if (tl_thread_slots == nullptr) {
    tl_thread_slots = new ThreadSlotList;
    // A key destructor that runs again later (a read lock taken from another
    // key's destructor) re-creates the list; glibc repeats key destructors.
    pthread_setspecific(thread_slots_key(), tl_thread_slots);
  }
  return *tl_thread_slots;
}

}  // namespace

ReaderSlotTable::ReaderSlotTable()
    : id_(next_table_id.fetch_add(1, std::memory_order_relaxed)) {
  LiveTables& live = live_tables();
  MutexLock guard(live.mutex);
  live.by_id.emplace(id_, this);
}

ReaderSlotTable::~ReaderSlotTable() {
  {
    LiveTables& live = live_tables();
    MutexLock guard(live.mutex);
    live.by_id.erase(id_);
  }
  for (std::size_t i = 0, n = nchunks_.load(std::memory_order_relaxed); i < n; ++i)
    delete chunks_[i].load(std::memory_order_relaxed);
}

ReaderSlot* ReaderSlotTable::claim_slot_for_this_thread() {
  ThreadSlotList& list = this_thread_slots();
  // A cache miss is not a new thread: the way may have been taken by another
  // lock this thread uses. One thread must never own two slots of one lock,
  // or its nesting count splits.
  ReaderSlot* slot = list.find(id_);
  if (slot == nullptr) {
    slot = claim_free_slot();
    if (list.slots.size() >= 64 && list.slots.size() % 64 == 0) list.prune();
    list.slots.emplace_back(id_, slot);
  }
  SlotCache& cache = tl_slot_cache;
  const unsigned way = static_cast<unsigned>(id_ % SlotCache::kWays);
  cache.ids[way] = id_;
  cache.slots[way] = slot;
  return slot;
}

ReaderSlot* ReaderSlotTable::claim_free_slot() {
  ReaderSlot* slot = nullptr;
  {
    MutexLock guard(mutex_);
    const std::size_t n = nchunks_.load(std::memory_order_relaxed);
    for (std::size_t c = 0; c < n && slot == nullptr; ++c) {
      Chunk* chunk = chunks_[c].load(std::memory_order_relaxed);
      for (ReaderSlot& s : chunk->slots) {
        if (!s.in_use) {
          slot = &s;
          break;
        }
      }
    }
    if (slot == nullptr) {
      if (n == kMaxChunks)
        fatal("PercpuRwSemaphore", "more than %zu threads use one PercpuRwSemaphore",
              kMaxChunks * kChunkSlots);
      auto* chunk = new Chunk;
      chunks_[n].store(chunk, std::memory_order_relaxed);
      // Release: pairs with the acquire load in sum_acquire(), so a writer
      // that sees the new count also sees the chunk pointer and zeroed slots.
      nchunks_.store(n + 1, std::memory_order_release);
      slot = &chunk->slots[0];
    }
    slot->in_use = true;
  }
  return slot;
}

void ReaderSlotTable::release_slot(ReaderSlot* slot) {
  MutexLock guard(mutex_);
  const long held = slot->count.load(std::memory_order_relaxed);
  if (held != 0) {
    warn("PercpuRwSemaphore",
         "a thread exited holding %ld read hold(s) of a PercpuRwSemaphore; they stay "
         "held until unlock_disowned_shared()",
         held);
    // Disowned count first, slot second: the writer reads slots before
    // disowned_, so it can over-count for a moment but never read a false zero.
    disowned_.fetch_add(held, std::memory_order_seq_cst);
    slot->count.store(0, std::memory_order_release);
  }
  slot->in_use = false;
}

void ReaderSlotTable::disown_one(ReaderSlot* slot) {
  // Same order as release_slot(): disowned_ up before the slot goes down.
  disowned_.fetch_add(1, std::memory_order_seq_cst);
  slot->count.store(slot->count.load(std::memory_order_relaxed) - 1,
                    std::memory_order_release);
}

bool ReaderSlotTable::release_one_disowned() {
  long held = disowned_.load(std::memory_order_relaxed);
  do {
    if (held <= 0) return false;
    // Release: pairs with the writer's acquire load in sum_acquire().
  } while (!disowned_.compare_exchange_weak(held, held - 1, std::memory_order_release,
                                            std::memory_order_relaxed));
  return true;
}

long ReaderSlotTable::sum_acquire() const {
  long sum = 0;
  // Acquire: pairs with the release store of nchunks_ in claim_slot_for_this_thread().
  const std::size_t n = nchunks_.load(std::memory_order_acquire);
  for (std::size_t c = 0; c < n; ++c) {
    const Chunk* chunk = chunks_[c].load(std::memory_order_relaxed);
    // Acquire: pairs with the release store of each reader's unlock.
    for (const ReaderSlot& s : chunk->slots)
      sum += s.count.load(std::memory_order_acquire);
  }
  // After the slots, so that a hold moving from a slot to disowned_ is seen
  // in at least one of the two places (see disown_one()).
  return sum + disowned_.load(std::memory_order_acquire);
}

}  // namespace cpuhp::detail
