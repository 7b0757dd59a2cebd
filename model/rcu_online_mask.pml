/*
 * rcu_online_mask.pml - the online mask with RCU semantics per bit.
 *
 * Code: src/domain.cpp, Domain::Impl::Impl: the kStateBringup state
 *   startup:  d.online_.set(cpu)                       (release)
 *   teardown: clear_online_bit() (src/transition.cpp): online_.clear(cpu);
 *             rcu::rcu_synchronize() (owed instead when nothing is installed
 *             to free: owed_grace_period.pml)
 * and walk() (src/transition.cpp), which runs the PREPARE startups (which build the
 * CPU's per-CPU data) before the bringup startup, and the PREPARE teardowns
 * (which free it) after the bringup teardown. Readers: an RCU read section
 * (cpuhp::rcu::ReadGuard) that tests the bit (CpuMask::test, acquire) and, if
 * set, uses the CPU's data. src/rcu.cpp: rcu_synchronize() is liburcu's
 * synchronize_rcu(). Labels:
 *   PREP_UP:   PREPARE startup builds the data      BIT_SET:  online_.set()
 *   BIT_CLEAR: online_.clear()                      GP:       rcu_synchronize()
 *   PREP_DOWN: PREPARE teardown frees the data
 *   RL / RU:   reader's rcu read lock / unlock      RB: test the bit
 *   RD1, RD2:  reader's loads of the data
 *
 * One CPU, which the hotplug process takes down and up HP_CYCLES times; NR
 * readers, each running RITER read sections. The data is a cell whose state
 * is FREED (also: not yet built) or LIVE. Sequentially consistent, except
 * where a mutant models a reordering by moving the store or load.
 *
 * The grace period waits for every read section that was running when it
 * began (each reader's section is identified by a per-reader generation);
 * sections that begin later do not hold it up.
 *
 * Property: a reader that saw the bit set finds the data LIVE on every load
 * until its read section ends.
 */

#ifndef NR
#define NR 2
#endif
#ifndef RITER
#define RITER 2
#endif
#ifndef HP_CYCLES
#define HP_CYCLES 2
#endif

#define FREED 0
#define LIVE  1

bit  online_bit = 1;            /* the CPU's bit in online_ */
byte data = LIVE;               /* the CPU's per-CPU data */

bit  in_rs[NR];                 /* reader i is inside a read section */
byte rs_gen[NR];                /* reader i's read-section count, mod 4 */

/* rcu_synchronize(): wait for every read section running now to end. */
inline synchronize_rcu() {
  atomic {
    j = 0;
    do
    :: j < NR -> snap[j] = in_rs[j]; gen[j] = rs_gen[j]; j++
    :: else -> j = 0; break
    od
  };
  do
  :: j < NR ->
     (!snap[j] || !in_rs[j] || rs_gen[j] != gen[j]);
     j++
  :: else -> j = 0; break
  od
}

proctype Hotplug() {
  byte k, j;
  bit snap[NR];
  byte gen[NR];
  for (k : 1 .. HP_CYCLES) {
    /* ---- down: ... -> bringup teardown -> PREPARE teardowns ---- */
#ifdef MUTANT_GP_BEFORE_CLEAR
GP:        synchronize_rcu();
BIT_CLEAR: online_bit = 0;
#else
BIT_CLEAR: online_bit = 0;
#ifndef MUTANT_SKIP_GP
GP:        synchronize_rcu();
#endif
#endif
PREP_DOWN: data = FREED;

    /* ---- up: PREPARE startups -> bringup startup -> ... ---- */
#ifdef MUTANT_PUBLISH_BEFORE_INIT
BIT_SET:   online_bit = 1;        /* a relaxed set lets the bit overtake the data */
PREP_UP:   data = LIVE
#else
PREP_UP:   data = LIVE;
BIT_SET:   online_bit = 1         /* release */
#endif
  }
}

proctype Reader(byte i) {
  byte k;
  bit b;
  byte d;
  for (k : 1 .. RITER) {
RL: atomic { in_rs[i] = 1; rs_gen[i] = (rs_gen[i] + 1) % 4 };
#ifdef MUTANT_READER_NO_ACQUIRE
    /* a relaxed test lets the data load overtake the bit load */
RD1: d = data;
RB:  b = online_bit;
#else
RB:  b = online_bit;              /* acquire */
RD1: d = data;
#endif
    if
    :: b ->
       assert(d == LIVE);
RD2:   d = data;                  /* still in the read section: still there */
       assert(d == LIVE)
    :: else -> skip
    fi;
    d = 0;
    b = 0;
RU: in_rs[i] = 0
  }
}

init {
  byte i;
  atomic {
    run Hotplug();
    for (i : 0 .. NR - 1) {
      run Reader(i)
    }
  }
}
