/*
 * percpu_rwsem.pml - the hotplug lock (cpuhp::PercpuRwSemaphore).
 *
 * Code: include/cpuhp/percpu_rwsem.h (lock_shared, unlock_shared: the fast
 * paths) and src/percpu_rwsem.cpp (lock_shared_slow, wake_writer,
 * enter_write_section, unlock, close_gate, schedule_gate_reopen,
 * reopen_gate_callback). The labels R1..R6, W1..W4, W6 and W7 below are the
 * [R1]..[R6], [W1]..[W4], [W6] and [W7] of the legend in percpu_rwsem.h and
 * of the comments at those steps in both files. R6 and R6b are both [R6]
 * (wake_writer()), reached from unlock_shared() and from the slow path's
 * back-off: a Promela label may appear only once in a process.
 *
 * Processes: NR readers, one writer that enters the write section WITER times
 * (the second entry finds the gate still closed and takes the skip path of
 * close_gate(); leaving again while the first reopen callback is queued gives
 * GP_REPLAY), the RCU callback thread that runs the deferred gate reopening,
 * and one store-buffer drainer per reader.
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
 * a barrier). Futex waits are value-based: block_.wait(1) is `block == 0`,
 * waiting_readers_.wait(n) is `waiting_readers != n`, and
 * writer_wake_seq_.wait(seq) is `woken` (set by every increment after the
 * writer's load of seq, which is what a never-wrapping counter gives).
 *
 * Not modelled: nesting (a nested lock_shared never blocks), try_lock and
 * try_lock_shared, disown_shared, the writer's own read locks (writer_owner_),
 * slot claiming. The code has no [W5]; the wait for waiting_readers_ before
 * [W3] and the reader's waiting_readers_ increment are unlabelled in both.
 *
 * Properties: mutual exclusion (the asserts in both critical sections); no
 * lost wake-up or deadlock (no invalid end state); writer progress (ltl
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

/* rcu_sync states (PercpuRwSemaphore::SyncState) */
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
bit  block = 0;                 /* block_ */
bit  writer_waiting = 0;        /* writer_waiting_ */
bit  woken = 0;                 /* writer_wake_seq_ moved since the writer loaded it */
byte waiting_readers = 0;       /* waiting_readers_ */
byte cnt[NR];                   /* slot counts in memory: what [W4] sums */
byte sb[2 * NR];                /* store buffers: sb[2i] oldest, sb[2i+1] */
byte nsb[NR];                   /* entries in reader i's store buffer */

bit  syncm = 0;                 /* sync_mutex_ */
bit  reopen_queued = 0;         /* reopen_queued_ */
byte writers_inside = 0;        /* writers_inside_ */
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

/* ---------------------------------------------------------- memory helpers */

/* One buffered store of reader i's slot count; a full buffer drains its oldest
 * entry first (a legal schedule of a deeper buffer). */
inline store_count(i, v) {
  atomic {
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

/* wake_writer(): [R6] fence, then wake the writer if it is waiting. */
inline wake_writer(i) {
#ifndef MUTANT_NO_WAKE_FENCE
  fence(i);                           /* [R6] */
#endif
  if
  :: writer_waiting -> woken = 1      /* writer_wake_seq_ += 1; notify_one() */
  :: else -> skip
  fi
}

proctype Reader(byte i) {
  bit counted;
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
          block == 0;                 /* block_.wait(1) */
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
       waiting_readers--              /* fetch_sub; notify_all at zero */
    :: else -> skip
    fi;
cs:
    readers_in_cs++;
    assert(!writer_in_cs);
    readers_in_cs--;
    /* ---- unlock_shared() ---- */
R3: store_count(i, 0);                /* count = held - 1, release */
R4: if                                /* gate_.load(relaxed) */
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

/* close_gate() (rcu_sync_enter) under sync_mutex_. */
inline close_gate() {
  atomic {
    syncm == 0 -> syncm = 1;
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

/* schedule_gate_reopen() (rcu_sync_exit) under sync_mutex_. */
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
  byte n, j, sum;
#ifdef LIVE
  do :: true ->
#else
  byte k;
  for (k : 1 .. WITER) {
#endif
    /* writer_mutex_: one writer process */
    close_gate();
    /* Readers that waited for the previous writer get in first. */
#ifdef MUTANT_NO_WAITING_READERS
    COMMIT;                           /* no waiting for them */
#else
    do
    :: atomic {
         n = waiting_readers;
         if
         :: n == 0 -> COMMIT; break
         :: else -> skip
         fi
       };
       waiting_readers != n           /* waiting_readers_.wait(n) */
    od;
#endif
W3: block = 1;
    writer_waiting = 1;               /* then a seq_cst fence */
W4: do
    :: woken = 0;                     /* seq = writer_wake_seq_.load() */
       sum = 0;                       /* slots_.sum_acquire(), slot by slot */
       j = 0;
       do
       :: j < NR -> sum = sum + cnt[j]; j++
       :: else -> j = 0; break
       od;
       if
       :: sum == 0 -> break
       :: else -> woken == 1          /* writer_wake_seq_.wait(seq) */
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
    /* ---- unlock() ---- */
W7: block = 0;                        /* release; notify_all() */
    schedule_gate_reopen()
#ifdef LIVE
  od
#else
  }
#endif
}

/* ------------------------------------------------ RCU callback thread */

/* reopen_gate_callback(), run after a grace period (an arbitrary delay). */
proctype Callback() {
end:
  do
  :: atomic {
       cb_pending && syncm == 0 -> syncm = 1; cb_pending = 0;
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
  }
}

#ifdef LIVE
/* Writer progress: under weak fairness the writer enters its section again
 * and again, however the readers come and go. */
ltl wprog { []<> writer_in_cs }
#endif
