/*
 * registration.pml - registering states and notifiers against hotplug.
 *
 * Code: src/domain.cpp (Domain::hotplug, the bringup state), src/transition.cpp
 * (transition, walk), src/registration.cpp (install_state, remove_state),
 * src/state_table.cpp (reserve_state, commit_state), src/writers_lock.cpp
 * (WritersLock, register_begin's lock), src/notifier_chain.cpp
 * (install_notifier_states, notify_post_dead, register_notifier). Labels:
 *   WL:  WritersLock               the writers' lock (cpu_add_remove_lock)
 *   HPW: WriteLock hotplug(...)    the hotplug lock taken for writing
 *   PD:  notify_post_dead()        after HPW is dropped, WL still held
 *   INS: commit_state()            at the end of install_state()
 *
 * CPUs and states. NCPU = 3: CPU 0 and CPU 2 start online, CPU 1 offline.
 * The state table is cut down to the states that matter here, in the order
 * of include/cpuhp/states.h:
 *   0 OFFLINE
 *   1 PDYN     a dynamic PREPARE slot that setup_state() takes (user PREPARE
 *              states, static and dynamic, all come before NPREP)
 *   2 NPREP    kStateNotifyPrepare, the last PREPARE state:
 *              UP_PREPARE / DEAD / UP_CANCELED
 *   3 BRINGUP  kStateBringup: sets / clears the online bit
 *   4 ODYN     a dynamic ONLINE slot that setup_state() takes
 *   5 NONLINE  kStateNotifyOnline: ONLINE / DOWN_PREPARE
 *   6 ACTIVE   kStateActive = kStateOnline
 * NPREP is the only state between the PREPARE states and BRINGUP, so a CPU
 * that is prepared for the notifiers but not online is a CPU at exactly NPREP
 * (when no transition is running): "parked". Two refusals keep parked CPUs
 * and registered notifiers apart:
 *   bring_to(cpu, NPREP) while notifiers are registered: kBusy
 *     (Domain::bring_to);
 *   register_notifier() while some CPU is at NPREP: kBusy
 *     (register_notifier in src/notifier_chain.cpp).
 * Other bring_to() refusals: target == current state (kAlreadyInState) is
 * modelled; the last online CPU (kLastCpu) never applies (CPU 0 stays
 * online), nor do the argument checks.
 *
 * Processes (all at once):
 *   Hotplug(1, ACTIVE)  Domain::up(1)
 *   Hotplug(2, OFFLINE) Domain::down(2)
 *   Registrar(PDYN)     setup_state(kPrepare, ...), then remove_state()
 *   Registrar(ODYN)     setup_state(kOnline, ...), then remove_state()
 *   NbRegistrar         the 2014 idiom: register_begin(); for each online CPU
 *                       init(cpu); register_notifier(nb); done() (if refused,
 *                       free what it made); later, maybe, the same for
 *                       unregistering: for each online CPU free(cpu);
 *                       unregister_notifier(nb)
 *   Helper              a thread that takes the hotplug read lock when the
 *                       notifier's POST_DEAD callback asks it to (and the
 *                       callback waits for it: why POST_DEAD runs with the
 *                       hotplug lock dropped)
 * With -DPARKED_CPU (once the finding FINDING_PARKED_CPU, now prevented by
 * the two refusals) the two hotplug processes park CPUs instead:
 *   Hotplug(1, NPREP)   bring_to(1, kStateNotifyPrepare), up from offline
 *   Hotplug(2, NPREP)   bring_to(2, kStateNotifyPrepare), down from online
 * and at the end (every other process done) init runs up(1) and down(2).
 * One startup of a registered state may fail (nondeterministically), in
 * setup_state or in up: the rollback paths run too.
 *
 * Properties:
 *   - every startup of a registered state finds the CPU not started, every
 *     teardown finds it started (startups and teardowns alternate: none
 *     doubled, none lost);
 *   - whenever a writer lets go of the writers' lock, and at the end, for
 *     each registered state S: started[S][cpu] == (S installed &&
 *     state[cpu] >= S): every CPU at or past S got exactly one startup;
 *   - at the same points, for the notifier: it has per-CPU data exactly for
 *     the CPUs at or past NPREP (what its events told it), and exactly for
 *     the online CPUs (what the 2014 idiom walks under register_begin(), to
 *     initialise at registration and to free at unregistration);
 *   - the notifier is told UP_PREPARE only for a CPU it has no data for,
 *     and UP_CANCELED, ONLINE, DOWN_PREPARE, DEAD, POST_DEAD only for one it
 *     has data for;
 *   - no deadlock (no invalid end state).
 */

#define NCPU 3

#define OFFLINE 0
#define PDYN    1
#define NPREP   2
#define BRINGUP 3
#define ODYN    4
#define NONLINE 5
#define ACTIVE  6

/* started[] index of a registered state */
#define SIDX(s) ((s) == ODYN)

/* notifier events */
#define UP_PREPARE  1
#define UP_CANCELED 2
#define DEAD        3
#define POST_DEAD   4
#define ONLINE      5
#define DOWN_PREP   6

/* Domain::bring_to(): kBusy for a target of exactly kStateNotifyPrepare while
 * notifiers are registered. */
#ifdef MUTANT_ALLOW_PARK_WITH_NOTIFIERS
#define PARK_REFUSED(target) 0
#else
#define PARK_REFUSED(target) ((target) == NPREP && nb_reg)
#endif

/* register_notifier() (src/notifier_chain.cpp): kBusy while some CPU's state is
 * kStateNotifyPrepare. */
#ifdef MUTANT_REGISTER_WHILE_PARKED
#define REGISTER_REFUSED 0
#else
#define REGISTER_REFUSED (st[0] == NPREP || st[1] == NPREP || st[2] == NPREP)
#endif

byte st[NCPU];                  /* cpu_state[] */
bit  online[NCPU];              /* the online mask */
bit  installed[ACTIVE + 1];     /* table[s].installed */

bit  wl = 0;                    /* writers' lock */
bit  hpw = 0;                   /* hotplug lock: held for writing */
byte hpr = 0;                   /* hotplug lock: read holds */

bit  started[2 * NCPU];         /* [SIDX(s)*NCPU + cpu]: startup ran, teardown not */
bit  fail_left = 1;             /* one startup of a registered state may fail */

bit  nb_reg = 0;                /* the notifier is on the chain */
bit  nbd[NCPU];                 /* the notifier's per-CPU data */
bit  hreq = 0;                  /* POST_DEAD callback -> Helper */
bit  hdone = 0;

inline lock_writers()   { atomic { wl == 0 -> wl = 1 } }
inline unlock_writers() { wl = 0 }
inline lock_hp_write()  { atomic { hpw == 0 && hpr == 0 -> hpw = 1 } }
inline unlock_hp_write(){ hpw = 0 }

/* What must hold for CPU c whenever no writer holds the writers' lock. */
inline check_cpu(c) {
  assert(started[c] == (installed[PDYN] && st[c] >= PDYN));
  assert(started[NCPU + c] == (installed[ODYN] && st[c] >= ODYN));
  /* the notifier's data matches its events... */
  assert(nbd[c] == (nb_reg && st[c] >= NPREP));
  /* ...and the online mask the 2014 idiom walks */
  assert(nbd[c] == (nb_reg && online[c]))
}

/* When a writer lets go of the writers' lock. */
inline check_inv() {
  atomic {
    c = 0;
    do
    :: c < NCPU -> check_cpu(c); c++
    :: else -> c = 0; break
    od
  }
}

/* ...and at the end. */
inline check_final() {
  check_inv();
  assert(wl == 0 && hpw == 0 && hpr == 0)
}

/* The notifier block's callback (the 2014 idiom): per-CPU data made at
 * UP_PREPARE, freed at POST_DEAD (or UP_CANCELED). Its POST_DEAD waits for a
 * helper thread that takes the hotplug read lock. */
inline nb_call(ev, cpu) {
  if
  :: ev == UP_PREPARE -> assert(!nbd[cpu]); nbd[cpu] = 1
  :: ev == UP_CANCELED -> assert(nbd[cpu]); nbd[cpu] = 0
  :: ev == DEAD || ev == ONLINE || ev == DOWN_PREP ->
     assert(nbd[cpu])           /* only for a CPU it knows */
  :: ev == POST_DEAD ->
     assert(nbd[cpu]);          /* POST_DEAD only for a CPU it knows */
     nbd[cpu] = 0;
     hreq = 1;
     hdone == 1;                /* wait for the helper */
     hdone = 0
  fi
}

inline notify(ev, cpu) {
  if
  :: nb_reg -> nb_call(ev, cpu)
  :: else -> skip
  fi
}

/* invoke_callback() of state s on cpu; ok := 0 if a startup failed. */
inline invoke(s, cpu, up, rollback, ok) {
  ok = 1;
  if
  :: s == NPREP ->
     if
     :: up -> notify(UP_PREPARE, cpu)
     :: !up && rollback -> notify(UP_CANCELED, cpu)
     :: !up && !rollback -> notify(DEAD, cpu)
     fi
  :: s == PDYN || s == ODYN ->
     if
     :: up && !rollback && fail_left -> fail_left = 0; ok = 0   /* startup fails */
     :: up -> assert(!started[SIDX(s) * NCPU + cpu]); started[SIDX(s) * NCPU + cpu] = 1
     :: !up -> assert(started[SIDX(s) * NCPU + cpu]); started[SIDX(s) * NCPU + cpu] = 0
     fi
  :: s == BRINGUP -> online[cpu] = up   /* teardown: clear + rcu_synchronize */
  :: s == NONLINE ->                     /* no veto here: no DOWN_FAILED */
     if
     :: up -> notify(ONLINE, cpu)
     :: else -> notify(DOWN_PREP, cpu)
     fi
  :: s == ACTIVE -> skip
  fi
}

/* transition() with the writers' lock held; the caller unlocks. */
inline transition(cpu, target) {
  from = st[cpu];
HPW:
  lock_hp_write();
  if
  :: target > from ->                       /* walk up */
     s = from + 1;
     do
     :: s > target -> break
     :: else ->
        if
        :: installed[s] -> invoke(s, cpu, 1, 0, ok)
        :: else -> ok = 1
        fi;
        if
        :: ok -> st[cpu] = s; s++
        :: else ->                          /* roll back to `from` */
           t = s - 1;
           do
           :: t > from ->
              if
              :: installed[t] -> invoke(t, cpu, 0, 1, ok)
              :: else -> skip
              fi;
              st[cpu] = t - 1;
              t--
           :: else -> break
           od;
           st[cpu] = from;
           ok = 0;
           break
        fi
     od
  :: else ->                                /* walk down (no veto here) */
     s = from;
     do
     :: s <= target -> break
     :: else ->
        if
        :: installed[s] -> invoke(s, cpu, 0, 0, ok)
        :: else -> skip
        fi;
        st[cpu] = s - 1;
        s--
     od;
     ok = 1
  fi;
#ifdef MUTANT_POST_DEAD_UNDER_HOTPLUG_LOCK
  if
  :: ok && target < NPREP && from >= NPREP -> notify(POST_DEAD, cpu)
  :: else -> skip
  fi;
  unlock_hp_write();
#else
  unlock_hp_write();
#ifdef MUTANT_EARLY_WRITERS_UNLOCK
  unlock_writers();
#endif
PD:
  if
  :: ok && target < NPREP && from >= NPREP -> notify(POST_DEAD, cpu)
  :: else -> skip
  fi
#endif
}

/* Domain::bring_to(cpu, target), writers' lock held: refused (refused = 1)
 * or transition(). */
inline bring_to(cpu, target) {
  if
  :: st[cpu] == target -> refused = 1               /* kAlreadyInState */
  :: st[cpu] != target && PARK_REFUSED(target) ->
     refused = 1                                    /* kBusy */
  :: else -> refused = 0; transition(cpu, target)
  fi
}

/* up(1) and down(2), or with -DPARKED_CPU bring_to(1 and 2, NPREP). */
proctype Hotplug(byte cpu; byte target) {
  byte from, s, t, c;
  bit ok, refused;
WL:
  lock_writers();
  bring_to(cpu, target);
#ifdef MUTANT_EARLY_WRITERS_UNLOCK
  if
  :: refused -> unlock_writers()
  :: else -> skip              /* transition() unlocked */
  fi
#else
  check_inv();
  unlock_writers()
#endif
}

/* setup_state() of state S (install_state with calls), then remove_state(S). */
proctype Registrar(byte S) {
  byte cpu, c, done;
  bit ok;
WL:
  lock_writers();
#ifdef MUTANT_INSTALL_BEFORE_CALLS
  installed[S] = 1;          /* installed first, the lock let go... */
  unlock_writers();
#endif
  lock_hp_write();
  cpu = 0;
  do
  :: cpu < NCPU ->
     if
     :: st[cpu] >= S ->
        invoke(S, cpu, 1, 0, ok);
        if
        :: ok -> cpu++
        :: else ->                /* roll back the CPUs done, do not install */
           do
           :: cpu > 0 ->
              cpu--;
              if
              :: st[cpu] >= S -> invoke(S, cpu, 0, 1, ok)
              :: else -> skip
              fi
           :: else -> break
           od;
           installed[S] = 0;
           cpu = NCPU + 1         /* failed */
        fi
     :: else -> cpu++
     fi
  :: else -> break
  od;
  unlock_hp_write();
#ifdef MUTANT_INSTALL_BEFORE_CALLS
  lock_writers();
#else
INS:
  if
  :: cpu == NCPU -> installed[S] = 1
  :: else -> skip
  fi;
#endif
  check_inv();
  unlock_writers();

  /* remove_state(S) */
  lock_writers();
  if
  :: installed[S] ->
     lock_hp_write();
     cpu = NCPU;
     do
     :: cpu > 0 ->
        cpu--;
        if
        :: st[cpu] >= S -> invoke(S, cpu, 0, 0, ok)
        :: else -> skip
        fi
     :: else -> break
     od;
     unlock_hp_write();
     installed[S] = 0
  :: else -> skip
  fi;
  check_inv();
  unlock_writers()
}

/* register_begin(); for_each_online_cpu(cpu) init(cpu);
 * scope.register_notifier(nb); scope.done();  and maybe later
 * register_begin(); for_each_online_cpu(cpu) free(cpu);
 * scope.unregister_notifier(nb); scope.done(); */
proctype NbRegistrar() {
  byte cpu, c;
WL:
  lock_writers();
  cpu = 0;
  do
  :: cpu < NCPU ->
     if
     :: online[cpu] -> nbd[cpu] = 1
     :: else -> skip
     fi;
     cpu++
  :: else -> break
  od;
  if
  :: REGISTER_REFUSED ->         /* kBusy: free what was made */
     cpu = 0;
     do
     :: cpu < NCPU ->
        if
        :: online[cpu] -> nbd[cpu] = 0
        :: else -> skip
        fi;
        cpu++
     :: else -> break
     od
  :: else -> nb_reg = 1
  fi;
  check_inv();
  unlock_writers();

  if
  :: nb_reg ->
     lock_writers();
     cpu = 0;
     do
     :: cpu < NCPU ->
        if
        :: online[cpu] -> nbd[cpu] = 0
        :: else -> skip
        fi;
        cpu++
     :: else -> break
     od;
     nb_reg = 0;
     check_inv();
     unlock_writers()
  :: true -> skip                /* stays registered */
  fi
}

/* A thread the POST_DEAD callback waits for; it takes cpus_read_lock(). */
proctype Helper() {
end:
  do
  :: hreq ->
     hreq = 0;
     atomic { hpw == 0 -> hpr++ };
     hpr--;
     hdone = 1
  od
}

init {
  byte c, from, s, t;
  bit ok, refused;
  atomic {
    installed[NPREP] = 1; installed[BRINGUP] = 1;
    installed[NONLINE] = 1; installed[ACTIVE] = 1;
    st[0] = ACTIVE; online[0] = 1;
    st[1] = OFFLINE;
    st[2] = ACTIVE; online[2] = 1;
    run Helper();               /* first: the others can then end and go away */
#ifdef PARKED_CPU
    run Hotplug(1, NPREP);      /* parked on the way up */
    run Hotplug(2, NPREP);      /* parked on the way down */
#else
    run Hotplug(1, ACTIVE);
    run Hotplug(2, OFFLINE);
#endif
    run Registrar(PDYN);
    run Registrar(ODYN);
    run NbRegistrar()
  };
  /* the end: every process but Helper has finished */
  (_nr_pr == 2);            /* init and Helper */
#ifdef PARKED_CPU
  /* up(1), down(2): events for parked CPUs, if the notifier is still on */
  lock_writers();
  bring_to(1, ACTIVE);
  check_inv();
  unlock_writers();
  lock_writers();
  bring_to(2, OFFLINE);
  check_inv();
  unlock_writers();
#endif
  check_final()
}
