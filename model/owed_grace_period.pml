/*
 * owed_grace_period.pml - a down that skipped its grace period, and the
 * PREPARE teardown that pays it later.
 *
 * Code: src/transition.cpp, clear_online_bit() (the bringup state's
 * teardown): clears the CPU's online bit, then waits for a grace period if a
 * PREPARE teardown is installed, else only records grace_period_owed[cpu].
 * pay_grace_period_owed(), which run_one() (src/callback.cpp) calls before
 * every PREPARE teardown, waits for the grace period first if the CPU's bit is
 * clear and one is owed; any grace period of the Domain pays every debt.
 * Labels:
 *   BIT_CLEAR: online_mask().clear(cpu)     OWE:  grace_period_owed[cpu] = 1
 *   PUB:       a PREPARE startup publishes an object for the CPU
 *   PAY:       rcu_synchronize() in pay_grace_period_owed()
 *   FREE:      the PREPARE teardown unpublishes and frees the object
 *   BIT_SET:   online_mask().set(cpu) (the CPU comes back)
 *   RL / RU:   a reader's read lock / unlock    RB: test the bit
 *   RP:        load the published pointer       RD: use the object
 *
 * The scenario the API fuzzer found: the CPU is online and no PREPARE state is
 * installed; it goes down (or is parked in the PREPARE section), so the down
 * has nothing to free and skips its grace period; then, with the bit clear, a
 * PREPARE startup publishes an object for the CPU (a state installed with
 * calls, or an up that then fails before BRINGUP) and its teardown frees it
 * (the state removed, or the up rolled back); then the CPU comes back. A
 * reader that saw the bit set before the down may still be in that read
 * section and find the object. The hotplug process does this HP_CYCLES
 * times, with a new object each time.
 *
 * Property: an object a reader loaded in a read section in which it saw the
 * CPU's bit set is LIVE on every use until the section ends. Mutants: the
 * teardown does not pay (MUTANT_NO_PAY); the down neither waits nor records
 * the debt (MUTANT_NO_DEBT).
 */

#ifndef NR
#define NR 2
#endif
#ifndef HP_CYCLES
#define HP_CYCLES 2
#endif

#define FREED 0
#define LIVE  1

bit  online_bit = 1;
bit  owed = 0;                  /* grace_period_owed[cpu] */
byte ptr = 0;                   /* the published object, 0: none */
byte obj[HP_CYCLES + 1];        /* each object's state */

bit  in_rs[NR];
byte rs_gen[NR];

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
  byte k, j, o;
  bit snap[NR];
  byte gen[NR];
  for (k : 1 .. HP_CYCLES) {
    /* down: no PREPARE teardown installed, so no grace period */
BIT_CLEAR: online_bit = 0;
#ifndef MUTANT_NO_DEBT
OWE:       owed = 1;
#endif
    /* a PREPARE startup for the CPU, its bit clear */
PUB:       atomic { obj[k] = LIVE; ptr = k };
    /* its teardown: pay what the down skipped, then free */
#ifndef MUTANT_NO_PAY
    if
    :: owed && !online_bit ->
PAY:   synchronize_rcu();
       owed = 0
    :: else -> skip
    fi;
#endif
FREE:      o = ptr; ptr = 0; obj[o] = FREED; o = 0;
    /* up again (nothing installed to build) */
BIT_SET:   online_bit = 1
  }
}

proctype Reader(byte i) {
  bit b;
  byte p;
RL: atomic { in_rs[i] = 1; rs_gen[i] = (rs_gen[i] + 1) % 4 };
RB: b = online_bit;
  if
  :: b ->
     /* the object may be published after the bit test, in this section */
RP:  p = ptr;
     if
     :: p != 0 ->
RD:     assert(obj[p] == LIVE);
        assert(obj[p] == LIVE)
     :: else -> skip
     fi
  :: else -> skip
  fi;
  b = 0;
  p = 0;
RU: in_rs[i] = 0
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
