#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the hand-made seed inputs of fuzz/api_sequence_fuzzer.cpp into
fuzz/corpus/api/ (seed-*: one small program per call or situation).

The encoding mirrors the decoder in api_sequence_fuzzer.cpp (see its INPUT
FORMAT comment); change both together. Run from anywhere:
    fuzz/api_seeds.py            # rewrites fuzz/corpus/api/seed-*
    fuzz/api_seeds.py --findings # and the hand-made inputs under fuzz/findings/
"""
import os
import sys

# Operations, in the order of the fuzzer's enum Op.
(UP, DOWN, BRING_TO, SET_PRESENT, SUSPEND, RESUME, DISABLE, ENABLE, INJECT, SETUP,
 SETUP_NOCALLS, SETUP_AT, SETUP_AT_NOCALLS, REMOVE, REMOVE_NOCALLS, SETUP_MULTI,
 ADD_INSTANCE, ADD_INSTANCE_NOCALLS, REMOVE_INSTANCE, REMOVE_INSTANCE_NOCALLS,
 REGISTER_NOTIFIER, UNREGISTER_NOTIFIER, SCOPE_BLOCK, SCOPE_METHOD, RCU_BLOCK,
 READ_LOCK_BLOCK, SET_OBSERVER, QUERY, PIN, YIELD) = range(30)

# Scope methods.
(S_REGISTER, S_UNREGISTER, S_IS_REGISTERED, S_SETUP, S_SETUP_NOCALLS, S_REMOVE,
 S_REMOVE_NOCALLS, S_DONE, S_MOVE) = range(9)

# pick_state(): a byte below 150 picks an installed state (index modulo their
# number); 150..154 the built-ins.
LIVE0, LIVE1 = 0, 1
OFFLINE, NOTIFY_PREPARE, BRINGUP, NOTIFY_ONLINE, ACTIVE = 150, 151, 152, 153, 154

# Callback behaviours (one byte per invocation of a scripted callback).
OK, ERR, POS_ERR, THROW_RT, THROW_SYS, THROW_GENERIC, THROW_OTHER = (
    0x00, 0x90, 0xa0, 0xa8, 0xb0, 0xb8, 0xbc)
# Notifier answers use the same bytes: ERR -> NOTIFY_BAD, POS_ERR -> an errno,
# THROW_RT -> NOTIFY_STOP, THROW_SYS -> NOTIFY_DONE, THROW_OTHER -> throws.


def reenter(*op, then=0x00):
    """A behaviour that runs `op` from inside the callback, then returns OK
    (or fails, if `then` >= 0xe0). The outcome byte comes first."""
    return [0xc0, then, *flat(op)]


def flat(xs):
    out = []
    for x in xs:
        if isinstance(x, (list, tuple)):
            out += flat(x)
        else:
            out.append(x)
    return out


def header(possible, online, second_reader=False, dawdle=False, read_lock=False,
           sparse=False):
    b0 = (possible - 2) | (0x80 if sparse else 0)
    return [b0, online - 1, (1 if second_reader else 0) | (2 if dawdle else 0) |
            (4 if read_lock else 0)]


def target(t):
    if t == 121:
        return [0]
    if t == 0:
        return [64]
    return [200, t]


# Callback flags of a setup: both callbacks, startup only, teardown only, none.
BOTH, STARTUP_ONLY, TEARDOWN_ONLY, NONE = 0, 5, 6, 7


def setup(op, section=0, name=0, cbs=BOTH, scripted=0, static=None):
    out = [op, section]
    if static is not None:
        out.append(static)
    return out + [name, cbs, scripted]


def block(op, *ops):
    """A block of operations: each one a list (the operation's bytes with the
    behaviour bytes of the callbacks it runs)."""
    assert all(isinstance(o, list) for o in ops) and 1 <= len(ops) <= 6
    return [op, len(ops) - 1, *flat(ops)]


def scope(*ops):
    return block(SCOPE_BLOCK, *ops)


def smethod(m, *args, which=0):
    return [SCOPE_METHOD, m, which, *args]


SEEDS = {
    # Hotplug basics.
    "up-down": [header(4, 2), UP, 2, DOWN, 1, UP, 3, DOWN, 0, QUERY, 0, 2],
    "bring-to-every-section": [header(4, 1), setup(SETUP, name=0), setup(SETUP, 1, name=1),
                               BRING_TO, 1, target(40), BRING_TO, 1, target(60),
                               BRING_TO, 1, target(121), BRING_TO, 1, target(10), DOWN, 1],
    "last-cpu-and-bad-args": [header(2, 1), DOWN, 0, UP, 2, BRING_TO, 1, 251, UP, 0],
    "set-present": [header(4, 1, sparse=True), SET_PRESENT, 3, 0, UP, 3, SET_PRESENT, 3, 1,
                    UP, 3, SET_PRESENT, 1, 0, SET_PRESENT, 3, 0],
    "disable-enable": [header(3, 1), DISABLE, UP, 1, ENABLE, ENABLE, UP, 1],
    "suspend-resume": [header(4, 4), setup(SETUP, name=0), SUSPEND, ENABLE, UP, 2, RESUME,
                       RESUME],
    "inject-failure": [header(4, 2), setup(SETUP, name=0), INJECT, 2, LIVE0, UP, 2, UP, 2,
                       INJECT, 1, NOTIFY_ONLINE, DOWN, 1, INJECT, 1, BRINGUP, INJECT, 1,
                       NOTIFY_PREPARE, DOWN, 1, UP, 1, UP, 1],
    # States.
    "setup-remove-prepare": [header(4, 2), setup(SETUP, 0, name=0), UP, 2, DOWN, 1,
                             REMOVE, LIVE0, UP, 1],
    "setup-remove-online": [header(4, 2), setup(SETUP, 1, name=1), UP, 3, REMOVE, LIVE0],
    "setup-nocalls": [header(4, 3), setup(SETUP_NOCALLS, 0, name=2), DOWN, 2, UP, 2,
                      REMOVE_NOCALLS, LIVE0],
    "setup-at": [header(4, 2), setup(SETUP_AT, name=3, static=1), setup(SETUP_AT, name=4,
                 static=5), setup(SETUP_AT_NOCALLS, name=5, static=4), setup(SETUP_AT,
                 name=0, static=1), setup(SETUP_AT, name=1, static=7), DOWN, 1, REMOVE,
                 LIVE0, REMOVE, LIVE1, REMOVE_NOCALLS, LIVE0],
    "setup-name-clash": [header(2, 1), setup(SETUP, name=0), setup(SETUP, name=0),
                         setup(SETUP, name=6), setup(SETUP, name=7), REMOVE, ACTIVE,
                         REMOVE, 230],
    "half-callbacks": [header(4, 2), setup(SETUP, name=0, cbs=STARTUP_ONLY),
                       setup(SETUP, name=1, cbs=TEARDOWN_ONLY), setup(SETUP, 1, name=2,
                       cbs=NONE), UP, 2, DOWN, 1, DOWN, 2, REMOVE, LIVE0, REMOVE, LIVE0],
    "startup-fails": [header(4, 3), setup(SETUP, name=0, scripted=1), OK, OK, ERR,
                      setup(SETUP, name=1, scripted=3), OK, OK, OK, UP, 3, THROW_RT, UP, 3,
                      OK, THROW_SYS, DOWN, 2, POS_ERR],
    "teardown-fails": [header(4, 3), setup(SETUP, name=0, scripted=2), DOWN, 2, ERR,
                       DOWN, 1, THROW_OTHER, REMOVE, LIVE0, THROW_GENERIC],
    # Multi-instance states.
    "multi-instance": [header(4, 2), setup(SETUP_MULTI, name=0), ADD_INSTANCE, LIVE0, 0,
                       ADD_INSTANCE_NOCALLS, LIVE0, 1, UP, 2, ADD_INSTANCE, LIVE0, 0,
                       ADD_INSTANCE, LIVE0, 4, REMOVE_INSTANCE, LIVE0, 0,
                       REMOVE_INSTANCE_NOCALLS, LIVE0, 1, REMOVE_INSTANCE, LIVE0, 2,
                       ADD_INSTANCE, LIVE0, 3, REMOVE, LIVE0],
    "multi-instance-fails": [header(4, 3), setup(SETUP_MULTI, name=1, scripted=1),
                             ADD_INSTANCE, LIVE0, 0, OK, OK, OK, ADD_INSTANCE, LIVE0, 1,
                             OK, ERR, UP, 3, OK, THROW_RT],
    # Notifiers.
    "notifiers": [header(4, 2), REGISTER_NOTIFIER, 0, 4, REGISTER_NOTIFIER, 1, 2,
                  REGISTER_NOTIFIER, 2, 4, REGISTER_NOTIFIER, 0, 0, UP, 2, DOWN, 1,
                  UNREGISTER_NOTIFIER, 1, UNREGISTER_NOTIFIER, 1, REGISTER_NOTIFIER, 4, 0],
    "notifier-refuses": [header(4, 2), REGISTER_NOTIFIER, 0, 4 | 8, REGISTER_NOTIFIER, 1,
                         2 | 8, UP, 2, OK, ERR, OK, UP, 2, THROW_RT, OK, OK, DOWN, 1, OK,
                         POS_ERR, OK, DOWN, 1, THROW_OTHER, OK],
    "notifier-stop-at-prepare": [header(3, 1), REGISTER_NOTIFIER, 0, 0, BRING_TO, 1,
                                 target(49), BRING_TO, 2, target(40)],
    "suspend-with-notifiers": [header(4, 4), REGISTER_NOTIFIER, 0, 8, SUSPEND, OK, OK, OK,
                               OK, OK, OK, OK, OK, OK, RESUME],
    # register_begin() scopes.
    "scope-methods": [header(4, 2), REGISTER_NOTIFIER, 1, 0,
                      scope(smethod(S_REGISTER, 0, 1), smethod(S_IS_REGISTERED, 0),
                            smethod(S_SETUP, 0, 0, BOTH, 0), smethod(S_SETUP_NOCALLS, 1, 1,
                            BOTH, 0), smethod(S_REMOVE, LIVE0), smethod(S_UNREGISTER, 1,
                            0)),
                      scope(smethod(S_REMOVE_NOCALLS, LIVE0), [UP, 2], smethod(S_MOVE),
                            smethod(S_REGISTER, 2, 0, which=1), smethod(S_REGISTER, 3, 0),
                            smethod(S_DONE, which=1)),
                      [UP, 2], smethod(S_IS_REGISTERED, 2),
                      UP, 3],
    # A startup run by the scope's own setup_state re-enters the scope (a
    # query: allowed; one byte away from the calls that must be refused).
    "scope-callback-queries": [header(3, 2), REGISTER_NOTIFIER, 0, 0,
                               scope(smethod(S_SETUP, 0, 0, BOTH, 1) + [OK] +
                                     reenter(smethod(S_IS_REGISTERED, 0)),
                                     smethod(S_SETUP, 1, 1, BOTH, 1) + reenter(DISABLE) +
                                     reenter(ENABLE))],
    # ... and calls scope methods that its arguments get refused anyway (a
    # clashing name, a null notifier, an unknown state).
    "scope-callback-refused": [header(3, 2),
                               scope(smethod(S_SETUP, 0, 0, BOTH, 1) + [OK] +
                                     reenter(smethod(S_SETUP_NOCALLS, 0, 7, BOTH, 0)),
                                     smethod(S_SETUP, 1, 1, BOTH, 1) +
                                     reenter(smethod(S_REGISTER, 4, 0)) +
                                     reenter(smethod(S_REMOVE, 230)))],
    "scope-refuses": [header(4, 2), scope([UP, 2], [REGISTER_NOTIFIER, 0, 0],
                                          setup(SETUP, name=0), [SUSPEND], [DISABLE],
                                          [ENABLE]),
                      scope(scope([YIELD]), smethod(S_DONE), smethod(S_REGISTER, 0, 0),
                            [UP, 2])],
    # Read sections and the hotplug read lock.
    "rcu-section-refuses": [header(3, 1), block(RCU_BLOCK, [UP, 1], setup(SETUP, name=0),
                                                [DISABLE], [QUERY, 1], [QUERY, 2, 0],
                                                [SET_OBSERVER, 4, 0])],
    "read-lock-refuses": [header(3, 1), block(READ_LOCK_BLOCK, [DOWN, 0],
                                              [REGISTER_NOTIFIER, 0, 0], [ENABLE],
                                              [QUERY, 3]),
                          scope(block(READ_LOCK_BLOCK, smethod(S_SETUP_NOCALLS, 0, 0, BOTH,
                                                               0), [DISABLE], [ENABLE]))],
    # The observer.
    "observer-reenters": [header(3, 1), SET_OBSERVER, 3, 2, UP, 1, REMOVE, LIVE0, DOWN,
                          1, UP, 2, SET_OBSERVER, 0, 0, UP, 2],
    "observer-set-from-callback": [header(3, 1), setup(SETUP, name=0, scripted=1), OK,
                                   UP, 1, reenter(SET_OBSERVER, 4, 0), DOWN, 1],
    # Callbacks that re-enter.
    "callback-reenters": [header(4, 2), setup(SETUP, name=0, scripted=3), OK, OK, UP, 2,
                          reenter(UP, 3), DOWN, 2, reenter(REMOVE, LIVE0), UP, 2,
                          reenter(DISABLE), UP, 3, reenter(ENABLE), DOWN, 2,
                          reenter(QUERY, 0, 1), DOWN, 3,
                          reenter(block(READ_LOCK_BLOCK, [QUERY, 1]))],
    "notifier-reenters": [header(3, 1), REGISTER_NOTIFIER, 0, 8, UP, 1,
                          reenter(REGISTER_NOTIFIER, 1, 0), reenter(UNREGISTER_NOTIFIER,
                          0), DOWN, 1, reenter(SUSPEND), OK,
                          reenter(block(RCU_BLOCK, [INJECT, 1, NOTIFY_PREPARE]))],
    # Readers.
    "readers-dawdle": [header(8, 4, second_reader=True, dawdle=True), setup(SETUP,
                       name=0), setup(SETUP_MULTI, name=1), ADD_INSTANCE, LIVE1, 0, UP, 5,
                       DOWN, 1, UP, 6, REMOVE, LIVE0, DOWN, 5],
    "readers-read-lock": [header(6, 3, read_lock=True), setup(SETUP, name=0), UP, 4,
                          YIELD, DOWN, 2, YIELD, REMOVE, LIVE0],
    # A read section held across operations, and a CPU parked below a PREPARE state.
    "pinned-reader": [header(4, 3), PIN, setup(SETUP, name=0), DOWN, 2, REMOVE, LIVE0],
    # (With no PREPARE teardown installed before the CPU parks, this is the
    # finding fuzz/findings/parked-cpu-no-grace-period: here one is.)
    # The two shapes of fuzz/findings/down-skips-grace-period: no PREPARE
    # teardown when a CPU goes down, so no grace period; then data built on it
    # is freed with its bit clear while a reader that saw it online still runs.
    # (Kept out of the corpus while that defect stands: --findings writes them.)
    "!down-skips-grace-period/input-handmade": [header(3, 3), PIN, BRING_TO, 1,
                                               target(40), setup(SETUP, name=0),
                                               REMOVE, LIVE0, UP, 1],
    "!down-skips-grace-period/input-rollback-handmade": [
        header(3, 3), PIN, DOWN, 1, setup(SETUP_AT, name=0, static=0), INJECT, 1,
        NOTIFY_PREPARE, UP, 1],
    "parked-cpu": [header(3, 3), setup(SETUP, name=1), PIN, BRING_TO, 1, target(40),
                   setup(SETUP, name=0), REMOVE, LIVE1, UP, 1],
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "corpus", "api")
    os.makedirs(out, exist_ok=True)
    findings = "--findings" in sys.argv[1:]
    written = 0
    for name, program in SEEDS.items():
        data = bytes(flat(program))
        if len(data) > 4096:
            sys.exit(f"seed {name} is longer than -max_len")
        if name.startswith("!"):  # a hand-made reproducer of a known defect
            if not findings:
                continue
            path = os.path.join(here, "findings", name[1:])
            os.makedirs(os.path.dirname(path), exist_ok=True)
        else:
            path = os.path.join(out, "seed-" + name)
        with open(path, "wb") as f:
            f.write(data)
        written += 1
    print(f"wrote {written} inputs")


if __name__ == "__main__":
    main()
