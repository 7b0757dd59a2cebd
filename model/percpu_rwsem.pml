/*
 * percpu_rwsem.pml - the hotplug lock (cpuhp::PercpuRwSemaphore).
 *
 * Code: include/cpuhp/percpu_rwsem.h (lock_shared, unlock_shared: the fast
 * paths), src/percpu_rwsem.cpp (lock_shared_slow, wait_for_open_block,
 * leave_waiting_readers, wake_writer, enter_write_section,
 * wait_for_waiting_readers, unlock, leave_write_section, open_block) and
 * src/rcu_sync.cpp (RcuSync::enter, exit, callback: close_gate,
 * schedule_gate_reopen and Callback here). The labels R1..R6, W1..W4, W6 and
 * W7 below are the
 * [R1]..[R6], [W1]..[W4], [W6] and [W7] of the legend in percpu_rwsem.h and
 * of the comments at those steps in both files. R6 and R6b are both [R6]
 * (wake_writer()), reached from unlock_shared() and from the slow path's
 * back-off: a Promela label may appear only once in a process.
 *
 * Processes: NR readers, one writer that enters the write section WITER times
 * (the second entry finds the gate still closed and takes the skip path of
 * close_gate(); leaving again while the first reopen callback is queued gives
 * GP_REPLAY), the RCU callback thread that runs the deferred gate reopening,
 * one store-buffer drainer per reader and (safety runs) a destroyer.
 *
 * Memory model. The read fast path has no fence: a reader's stores to its own
 * slot count ([R1], [R3], the slow path's back-off) go into a per-reader FIFO
 * store buffer (depth 2) and reach memory (cnt[]) whenever the drainer runs,
 * so a reader's later loads ([R2], [R4], block, writer_waiting) may be done
 * while its count store is still invisible to the writer: store->load
 * reordering, the one the fast path relies on membarrier to repair. A fence
 * ([R5], [R6]) drains the reader's own buffer; [W2] (membarrier: a full
 * barrier on every running thread) drains every reader's buffer. The writer's
 * own stores are followed by a full fence in the code ([W2], the fence after
 * [W3], the mutexes) and are modelled as immediately visible. The RCU grace
 * period before the reopen callback is an arbitrary delay (it is not used as
 * a barrier).
 *
 * Futexes (src/futex.h), as implemented: futex_wait(word, v) compares and
 * enqueues in one step (the kernel's guarantee) and then sleeps until a
 * futex_wake() on the word dequeues it; futex_wake() is a separate step after
 * the waker's own store. Sleeping is explicit (bsleep[], wsleep, wrsleep), so
 * a wake-up that nobody is owed to is lost, as on a real futex. The words:
 *   block_            0 open, 1 blocked, 2 blocked with sleepers. A reader
 *                     marks 1 -> 2 (compare-exchange) before futex_wait(2);
 *                     [W7] is an exchange to 0 that wakes all if it read 2.
 *   writer_wake_seq   the writer loads it (woken = 0: a never-wrapping
 *                     counter, so "changed since the load" is one bit), sums,
 *                     and futex_waits for the loaded value; a reader that saw
 *                     writer_waiting bumps it (woken = 1), then wakes.
 *   waiting_readers_  the count and the writer's "asleep" bit (wr_asleep): the
 *                     writer sets the bit (compare-exchange on the count it
 *                     saw) and futex_waits for count|bit; the last reader's
 *                     decrement reads the bit and wakes.
 * Spurious wake-ups are not generated (every wait re-checks in a loop, so
 * they could only add states).
 *
 * Lifetime (safety runs). The Destroyer frees the semaphore once it has
 * observed every release: each reader's last [R3] in memory, the writer's
 * last [W7], and (the destructor takes it) writer_mutex_ free, no reopen
 * callback running. After that, `freed` makes every access to the
 * semaphore's own memory an assertion failure (OBJ); the gate,
 * writer_waiting and writer_wake_seq live in the type-stable LockCell and may
 * still be touched (CELL; with MUTANT_GATE_IN_OBJECT they are in the object,
 * the old layout). A queued reopen callback finds its owner gone and does
 * nothing (the token).
 *
 * Not modelled: nesting (a nested lock_shared never blocks), try_lock and
 * try_lock_shared, disown_shared, the writer's own read locks (writer_owner_),
 * slot claiming. The code has no [W5]; the wait for waiting_readers_ before
 * [W3] and the reader's waiting_readers_ increment are unlabelled in both.
 *
 * Properties: mutual exclusion (the asserts in both critical sections); no
 * lost wake-up or deadlock (no invalid end state); no access to the
 * semaphore after the last release (assert(!freed), safety runs); writer
 * progress (ltl
 * wprog, -DLIVE); reader fairness (-DREADER_FAIRNESS), checked where a reader
 * that waited leaves the slow path. Writers are numbered in the order they
 * pass their waiting_readers_ check (wcommit); the reader notes that number
 * when it first finds block_ set (fb: the writer it found, which set block_),
 * when it is counted in waiting_readers_ (qd) and when it backs off (bo):
 *   (a) queued:  no writer numbered above qd has entered its section yet;
 *   (b) stepped aside: none numbered above bo has (a reader is counted before
 *       it lets go of its count and wakes the writer: the order of
 *       lock_shared_slow(); MUTANT_COUNT_AFTER_WAKE is the old order);
 *   (c) bounded overtaking: none numbered above fb + 1 has: a reader that
 *       found a writer inside is overtaken by at most one more writer
 *       (needs WITER >= 3 to say anything; check runs it with 3).
 * The header's strong reading, "a reader that found a writer inside gets in
 * before the writer after it" (none above fb), does not hold:
 * -DREADER_FAIRNESS_FROM_BLOCK, refuted by spin; see model/README.md.
 *
 * Build flags:
 *   -DLIVE               readers and writer loop forever; check the ltl
 *                        property wprog with  pan -a -f  (writer progress)
 *   -DFENCED             ReadSide::kFenced: the gate starts closed and never
 *                        reopens; every reader takes the fenced slow path
 *   -DCOARSE_FUTEX       each futex wait's "mark the word, compare, enqueue"
 *                        and each wake's "store, wake" is one step (the big
 *                        runs; the default run keeps every step apart)
 *   -DVARIANT_REOPEN_NOW the writer reopens the gate at unlock, without the
 *                        grace period (a benign variant: still verifies)
 *   -DREADER_FAIRNESS    check reader fairness (a), (b), (c) as stated above
 *   -DOVERTAKING_ONLY    with -DREADER_FAIRNESS: (c) only
 *   -DREADER_FAIRNESS_FROM_BLOCK  the strong reading (none above fb): the
 *                        code does not keep it (a limit, not a mutant)
 *   -DWITER=n, -DNR=n, -DRITER=n  writer entries, readers, reader entries
 *   -DMUTANT_*           see the README; each one must be rejected
 */

#ifndef NR
#define NR 2
#endif
#ifndef RITER
#define RITER 2
#endif
#ifndef WITER
#define WITER 2
#endif

#define OPEN   0
#define CLOSED 1

/* rcu_sync states (detail::RcuSync::State; kClosedForGood is PASSED here) */
#define IDLE         0
#define PASSED       1
#define EXIT_PENDING 2
#define REPLAY       3

/* ------------------------------------------------------------ shared state */
#ifdef FENCED
byte gate = CLOSED;
byte sync_state = PASSED;
#else
byte gate = OPEN;               /* gate_ */
byte sync_state = IDLE;         /* sync_state_ */
#endif
byte block = 0;                 /* block_: 0 open, 1 blocked, 2 with sleepers */
bit  bsleep[NR];                /* reader i asleep in futex_wait(&block_, 2) */
bit  writer_waiting = 0;        /* cell->writer_waiting */
bit  woken = 0;                 /* writer_wake_seq moved since the writer loaded it */
bit  wsleep = 0;                /* the writer asleep in futex_wait(&writer_wake_seq) */
byte waiting_readers = 0;       /* waiting_readers_: the count ... */
bit  wr_asleep = 0;             /* ... and its kWriterAsleep bit */
bit  wrsleep = 0;               /* the writer asleep in futex_wait(&waiting_readers_) */
bit  wmutex = 0;                /* writer_mutex_ (taken by the destructor) */
byte cnt[NR];                   /* slot counts in memory: what [W4] sums */
byte sb[2 * NR];                /* store buffers: sb[2i] oldest, sb[2i+1] */
byte nsb[NR];                   /* entries in reader i's store buffer */

bit  syncm = 0;                 /* RcuSync::mutex_ */
bit  reopen_queued = 0;         /* RcuSync::callback_queued_ */
byte writers_inside = 0;        /* RcuSync::writers_ */
bit  cb_pending = 0;            /* an rcu_call() of the reopen callback is queued */

/* observation only */
#if defined(READER_FAIRNESS) || defined(READER_FAIRNESS_FROM_BLOCK)
#define FAIRNESS 1
byte wcommit = 0;               /* writers past the waiting_readers_ check */
byte wcs_gen = 0;               /* wcommit of the writer last in its section */
#define COMMIT wcommit++
#else
#define COMMIT skip
#endif
byte readers_in_cs = 0;
bit  writer_in_cs = 0;

/* lifetime (safety runs only) */
#ifdef LIVE
#define OBJ skip
#define NOT_FREED true
#else
bit  freed = 0;                 /* the Destroyer ran the destructor */
byte rdone = 0;                 /* readers past their last [R3] */
bit  wdone = 0;                 /* the writer past its last [W7] */
#define OBJ assert(!freed)      /* an access to the semaphore's own memory */
#define NOT_FREED (!freed)
#endif
/* CELL_ precedes an access to the LockCell: fine after the free (and no
 * step at all), unless the cell's words are in the object (the old layout). */
#ifdef MUTANT_GATE_IN_OBJECT
#define CELL_ OBJ;
#else
#define CELL_
#endif

/* ---------------------------------------------------------- memory helpers */

/* One buffered store of reader i's slot count; a full buffer drains its oldest
 * entry first (a legal schedule of a deeper buffer). */
inline store_count(i, v) {
  atomic {
    OBJ;                              /* the slot is the semaphore's memory */
    if
    :: nsb[i] == 2 ->
       cnt[i] = sb[2*i]; sb[2*i] = sb[2*i+1]; sb[2*i+1] = 0; nsb[i] = 1
    :: else -> skip
    fi;
    sb[2*i + nsb[i]] = v;
    nsb[i]++
  }
}

/* The oldest buffered store of reader i reaches memory. */
inline drain_one(i) {
  cnt[i] = sb[2*i]; sb[2*i] = sb[2*i+1]; sb[2*i+1] = 0; nsb[i]--
}

/* A full fence on reader i: its buffer drains before it goes on. */
inline fence(i) {
  atomic {
    do
    :: nsb[i] > 0 -> drain_one(i)
    :: else -> break
    od
  }
}

/* [W2] membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED): every reader passes a
 * full barrier. */
inline membarrier() {
  atomic {
    j = 0;
    do
    :: j < NR ->
       do
       :: nsb[j] > 0 -> drain_one(j)
       :: else -> break
       od;
       j++
    :: else -> j = 0; break
    od
  }
}

/* --------------------------------------------------------------- readers */

/* waiting_readers_.fetch_add(1), once per slow path (counted_as_waiting). */
#ifdef FAIRNESS
#define NOTE_QUEUED qd = wcommit
#else
#define NOTE_QUEUED skip
#endif
inline count_waiting(i) {
  if
  :: !counted -> atomic { waiting_readers++; NOTE_QUEUED }; counted = 1
  :: else -> skip
  fi
}

/* wake_writer(): [R6] fence, then wake the writer if it is waiting. Only
 * cell accesses: it runs after the caller's release. */
inline wake_writer(i) {
#ifndef MUTANT_NO_WAKE_FENCE
  fence(i);                           /* [R6] */
#endif
  CELL_
  if
  :: writer_waiting ->
#if defined(MUTANT_WAKE_BEFORE_BUMP)
     wsleep = 0;                      /* futex_wake before the bump */
     CELL_ woken = 1
#elif defined(COARSE_FUTEX)
     CELL_ atomic { woken = 1; wsleep = 0 }
#else
     CELL_ woken = 1;                 /* writer_wake_seq += 1 (release) */
     wsleep = 0                       /* futex_wake(&writer_wake_seq, 1) */
#endif
  :: else -> skip
  fi
}

/* wait_for_open_block(): mark "sleepers" (1 -> 2), futex_wait(&block_, 2),
 * until block_ is seen 0 (the poll before sleeping is the `block == 0`
 * branch taken at any time). */
inline wait_for_open_block(i) {
  do
  :: block == 0 -> break
#ifdef COARSE_FUTEX
  :: block != 0 ->                    /* mark and futex_wait as one step */
     atomic { if :: block != 0 -> block = 2; bsleep[i] = 1 :: else -> skip fi };
#else
  :: block == 1 -> atomic { if :: block == 1 -> block = 2 :: else -> skip fi }
  :: block == 2 ->
#ifdef MUTANT_SLEEP_WITHOUT_RECHECK
     bsleep[i] = 1;                   /* sleeps on what it saw, no comparison */
#else
     atomic { if :: block == 2 -> bsleep[i] = 1 :: else -> skip fi };
#endif
#endif
     bsleep[i] == 0                   /* until a futex_wake dequeues it */
  od
}

/* leave_waiting_readers(): the decrement tells whether to wake the writer. */
inline leave_waiting(i) {
#ifdef MUTANT_NOTIFY_BEFORE_DECREMENT
  /* The old std::atomic::notify_all(): its check for sleepers (libstdc++'s
   * waiter count) can pass the relaxed decrement on a weakly ordered CPU. */
  lb = wr_asleep;
  atomic { lb = lb && waiting_readers == 1; waiting_readers-- };
#else
  atomic { lb = wr_asleep && waiting_readers == 1; waiting_readers-- };
#endif
  if
  :: lb -> lb = 0; wrsleep = 0        /* futex_wake(&waiting_readers_, 1) */
  :: else -> skip
  fi
}

proctype Reader(byte i) {
  bit counted;
  bit lb;                             /* leave_waiting(): wake the writer */
#ifdef FAIRNESS
  /* wcommit (writers past their waiting_readers_ check so far) when this
   * reader, in this slow path, first ... */
  byte fb;                            /* ... found block_ set */
  byte qd;                            /* ... was counted in waiting_readers_ */
  byte bo;                            /* ... backed off (count = 0) */
#endif
#ifdef MUTANT_READ_GATE_FIRST
  byte g;
#endif
#ifdef LIVE
  do :: true ->
#else
  byte k;
  for (k : 1 .. RITER) {
#endif
    /* ---- lock_shared() fast path ---- */
#ifdef MUTANT_READ_GATE_FIRST
    g = gate;                         /* the gate is read before the count goes up */
R1: store_count(i, 1);
R2: if
    :: g == OPEN -> goto cs
    :: else -> skip
    fi;
#else
R1: store_count(i, 1);                /* count = held + 1, relaxed */
R2: if                                /* gate_.load(acquire) */
    :: gate == OPEN -> goto cs
    :: else -> skip
    fi;
#endif
    /* ---- lock_shared_slow() ---- */
    counted = 0;
#ifdef FAIRNESS
    fb = 255; bo = 255; qd = 255;     /* not waiting yet */
#endif
#ifdef MUTANT_ANNOUNCE_FIRST
    count_waiting(i);                 /* counted before looking at block_ */
#endif
    do
    :: true ->
#ifndef MUTANT_NO_SLOW_FENCE
R5:    fence(i);
#endif
       if
       :: block == 0 -> break
#ifdef FAIRNESS
       :: atomic { block != 0 -> if :: fb == 255 -> fb = wcommit :: else -> skip fi } ->
#else
       :: else ->
#endif
#ifndef MUTANT_COUNT_AFTER_WAKE
          count_waiting(i);           /* counted before backing off (the code) */
#endif
#ifdef FAIRNESS
          atomic {                    /* back off: hold nothing while waiting */
            store_count(i, 0);
            if :: bo == 255 -> bo = wcommit :: else -> skip fi
          };
#else
          store_count(i, 0);          /* back off: hold nothing while waiting */
#endif
R6b:      wake_writer(i);
#ifdef MUTANT_COUNT_AFTER_WAKE
          count_waiting(i);           /* the old order: counted after the wake-up */
#endif
#ifndef MUTANT_RETRY_WITHOUT_WAIT
          wait_for_open_block(i);
#endif
          store_count(i, 1)           /* [R1] again */
       fi
    od;
    if
    :: counted ->
#ifdef READER_FAIRNESS
       /* (a) queued: no writer that passed its waiting_readers_ check after
        *     this reader was counted in waiting_readers_ is in yet. */
#ifndef OVERTAKING_ONLY
       assert(wcs_gen <= qd);
#endif
       /* (b) stepped aside: no writer that passed its check after this
        *     reader backed off (let go of its count for the writer in front)
        *     is in yet. */
#ifndef OVERTAKING_ONLY
       assert(wcs_gen <= bo);
#endif
       /* (c) bounded overtaking: the reader found writer number fb inside
        *     (block_ set); at most one more writer (fb + 1) gets in before
        *     it. Needs WITER >= 3 to say anything. */
       assert(wcs_gen <= fb + 1);
#endif
#ifdef READER_FAIRNESS_FROM_BLOCK
       /* The strong reading: not even writer fb + 1 gets in first. */
       assert(wcs_gen <= fb);
#endif
       leave_waiting(i)
    :: else -> skip
    fi;
cs:
    readers_in_cs++;
    assert(!writer_in_cs);
    readers_in_cs--;
    /* ---- unlock_shared() ---- */
#ifdef LIVE
R3: store_count(i, 0);                /* count = held - 1, release */
#else
R3: atomic {
      store_count(i, 0);              /* count = held - 1, release */
      if :: k == RITER -> rdone++ :: else -> skip fi
    };
#endif
    CELL_
R4: if                                /* cell->gate.load(relaxed) */
    :: gate != OPEN ->
#ifndef MUTANT_NO_WAKE
R6:    wake_writer(i)
#else
       skip
#endif
    :: else -> skip
    fi
#ifdef LIVE
  od
#else
  }
#endif
}

/* The hardware draining reader i's store buffer, at any time. */
proctype Drainer(byte i) {
end:
  do
  :: atomic { nsb[i] > 0 -> drain_one(i) }
  od
}

/* ---------------------------------------------------------------- writer */

/* RcuSync::enter() (rcu_sync_enter) under its mutex. */
inline close_gate() {
  atomic {
    syncm == 0 -> syncm = 1;
    wmutex = 1;                       /* (the writer's, taken just before) */
    writers_inside++
  };
  if
  :: sync_state == IDLE ->
W1:  gate = CLOSED;
#ifndef MUTANT_NO_MEMBARRIER
W2:  membarrier();
#endif
     atomic { sync_state = PASSED; syncm = 0 }
  :: sync_state == EXIT_PENDING || sync_state == REPLAY ->
     /* a reopen is queued but the gate is still closed: skip [W1]/[W2] */
     atomic { sync_state = PASSED; syncm = 0 }
  :: sync_state == PASSED ->
     syncm = 0                        /* fenced read side: the gate never opens */
  fi
}

/* RcuSync::exit() (rcu_sync_exit) under its mutex. */
inline schedule_gate_reopen() {
  atomic {
    syncm == 0 -> syncm = 1;
    writers_inside--;
#ifdef FENCED
    skip;
#else
    if
    :: writers_inside != 0 -> skip
    :: else ->
#ifdef VARIANT_REOPEN_NOW
       gate = OPEN; sync_state = IDLE
#else
       if
       :: reopen_queued -> sync_state = REPLAY
       :: else -> sync_state = EXIT_PENDING; reopen_queued = 1; cb_pending = 1
       fi
#endif
    fi;
#endif
    syncm = 0
  }
}

proctype Writer() {
  byte n, j, sum, old;
#ifdef LIVE
  do :: true ->
#else
  byte k;
  for (k : 1 .. WITER) {
#endif
    close_gate();                     /* after taking writer_mutex_ */
    /* Readers that waited for the previous writer get in first. */
#ifdef MUTANT_NO_WAITING_READERS
    COMMIT;                           /* no waiting for them */
#else
    do
    :: atomic {
         n = waiting_readers;
         if
         :: n == 0 -> wr_asleep = 0; COMMIT; break   /* then clear our bit */
         :: else -> skip
         fi
       };
       /* compare_exchange(n, n | asleep), then futex_wait(n | asleep) */
#ifdef COARSE_FUTEX
       atomic { if :: waiting_readers == n -> wr_asleep = 1; wrsleep = 1 :: else -> skip fi };
       wrsleep == 0
#else
       atomic { if :: waiting_readers == n -> wr_asleep = 1 :: else -> n = 0 fi };
       if
       :: n != 0 ->
          atomic { if :: waiting_readers == n && wr_asleep -> wrsleep = 1 :: else -> skip fi };
          wrsleep == 0
       :: else -> skip
       fi
#endif
    od;
    n = 0;
#endif
W3: block = 1;
    writer_waiting = 1;               /* then a seq_cst fence */
W4: do
    :: woken = 0;                     /* seq = cell->writer_wake_seq.load() */
       sum = 0;                       /* slots_.sum_acquire(), slot by slot */
       j = 0;
       do
       :: j < NR -> sum = sum + cnt[j]; j++
       :: else -> j = 0; break
       od;
       if
       :: sum == 0 -> break
       :: else ->                     /* futex_wait(&writer_wake_seq, seq) */
          atomic { if :: woken == 0 -> wsleep = 1 :: else -> skip fi };
          wsleep == 0
       fi
    od;
    sum = 0;
    writer_waiting = 0;
#ifdef FAIRNESS
    atomic { writer_in_cs = 1; wcs_gen = wcommit };
#else
    writer_in_cs = 1;
#endif
    assert(readers_in_cs == 0);
    writer_in_cs = 0;
    /* ---- unlock(): leave_write_section() ---- */
    schedule_gate_reopen();           /* rcu_sync exit, before [W7] */
#ifdef LIVE
#define LAST_W7 skip
#else
#define LAST_W7 if :: k == WITER -> wdone = 1 :: else -> skip fi
#endif
#ifdef MUTANT_WAKE_BEFORE_RELEASE
    /* decides whether to wake from a load before its release */
    old = block;
W7: atomic { block = 0; LAST_W7 };
#else
W7: atomic { old = block; block = 0; LAST_W7 };   /* exchange, release */
#endif
    /* futex_wake_all(&block_) if the exchange read "sleepers", then
     * writer_mutex_.unlock() (one step: the window that matters is the one
     * between [W7] and the mutex) */
    atomic {
      if
      :: old == 2 ->
         j = 0;
         do
         :: j < NR -> bsleep[j] = 0; j++
         :: else -> j = 0; break
         od
      :: else -> skip
      fi;
      old = 0;
      OBJ;
      wmutex = 0
    }
#ifdef LIVE
  od
#else
  }
#endif
}

/* ------------------------------------------------------- destroyer */

#ifndef LIVE
/* Every reader's last release in memory (its buffer drained, count 0). */
#if NR == 1
#define RELEASED_ALL (nsb[0] == 0 && cnt[0] == 0)
#elif NR == 2
#define RELEASED_ALL (nsb[0] == 0 && cnt[0] == 0 && nsb[1] == 0 && cnt[1] == 0)
#else
#define RELEASED_ALL (nsb[0] == 0 && cnt[0] == 0 && nsb[1] == 0 && cnt[1] == 0 && \
                      nsb[2] == 0 && cnt[2] == 0)
#endif

/* The last user: it has seen every release (a thread that acquired the
 * semaphore after them) and destroys it. ~PercpuRwSemaphore takes
 * writer_mutex_ and the reopen token's mutex (no callback running). */
#ifdef MUTANT_DTOR_NO_WAIT
#define WRITER_MUTEX_FREE true          /* the old destructor did not take it */
#else
#define WRITER_MUTEX_FREE (wmutex == 0)
#endif
proctype Destroyer() {
  atomic {
    rdone == NR && wdone && RELEASED_ALL && block == 0 && syncm == 0 &&
    WRITER_MUTEX_FREE -> freed = 1
  }
}
#endif

/* ------------------------------------------------ RCU callback thread */

/* RcuSync::callback(), run after a grace period (an arbitrary delay). */
proctype Callback() {
end:
  do
  :: atomic {
       /* once freed, the token has no owner: the callback does nothing */
       cb_pending && syncm == 0 && NOT_FREED -> syncm = 1; cb_pending = 0;
       if
       :: writers_inside == 0 && sync_state == REPLAY ->
          sync_state = EXIT_PENDING; cb_pending = 1   /* queue_gate_reopen() again */
       :: writers_inside == 0 && sync_state == EXIT_PENDING ->
W6:       gate = OPEN;                /* release */
          sync_state = IDLE;
          reopen_queued = 0
       :: else ->
#ifdef MUTANT_REOPEN_WHILE_WRITER
          gate = OPEN;                /* reopens although a writer is inside */
          sync_state = IDLE;
#endif
          reopen_queued = 0
       fi;
       syncm = 0
     }
  od
}

init {
  byte i;
  atomic {
    for (i : 0 .. NR - 1) {
      run Reader(i);
      run Drainer(i)
    }
    run Writer();
    run Callback()
#ifndef LIVE
    ; run Destroyer()
#endif
  }
}

#ifdef LIVE
/* Writer progress: under weak fairness the writer enters its section again
 * and again, however the readers come and go. */
ltl wprog { []<> writer_in_cs }
#endif
