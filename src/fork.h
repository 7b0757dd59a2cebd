// src/fork.h — fork() in a process whose threads use cpuhp; and liburcu's
// call_rcu worker started with every signal blocked. Internal header.
//
// The behaviour promised (which threads the child gets, what is reset, the
// cost and the preconditions; the signal masks) is the public contract in
// cpuhp/rcu.h, "fork()" and "Signals"; src/fork.cpp says how it is kept.
#pragma once

namespace cpuhp::detail {

// Installs cpuhp's pthread_atfork handlers. Idempotent; src/fork.cpp also calls
// it from a static initializer, so it has run before main() in every program
// that links the RCU layer.
void install_fork_handlers() noexcept;

// urcu_memb_register_thread() for a thread cpuhp registers, made fork-safe: it
// never overlaps the moment of a fork() (see above), and the child forgets the
// thread. Also starts the call_rcu worker (ensure_call_rcu_worker()), so that
// no read section ever has to wait for the worker's creation.
void fork_safe_register_thread() noexcept;

// urcu_memb_unregister_thread() for a thread fork_safe_register_thread()
// registered. Precondition: the thread is registered and outside any read
// section.
void fork_safe_unregister_thread() noexcept;

// The thread's registration was ended behind cpuhp's back (the application
// called urcu_memb_unregister_thread() directly): forget the thread.
void fork_forget_thread() noexcept;

// urcu_memb_synchronize_rcu(), never overlapping the moment of a fork().
void fork_safe_synchronize_rcu() noexcept;

// Creates liburcu's default call_rcu worker, if it does not exist yet, from
// this thread with every signal blocked (threads inherit their creator's signal
// mask), so that the worker never runs a signal handler. Cheap once done: one
// acquire load.
void ensure_call_rcu_worker() noexcept;

}  // namespace cpuhp::detail
