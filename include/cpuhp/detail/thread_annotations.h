// SPDX-License-Identifier: MIT
// cpuhp/detail/thread_annotations.h — clang's -Wthread-safety attributes.
//
// Not a public API. cpuhp's locks and the data they guard carry these, so a
// clang build with -Wthread-safety -Werror (scripts/test.sh does one) proves
// at compile time that guarded data is touched only with its lock held and
// that functions documented as "caller holds X" are only called so. Other
// compilers see nothing.
#pragma once

#if defined(__clang__)
#define CPUHP_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define CPUHP_THREAD_ANNOTATION(x)
#endif

#define CPUHP_CAPABILITY(name) CPUHP_THREAD_ANNOTATION(capability(name))
#define CPUHP_SCOPED_CAPABILITY CPUHP_THREAD_ANNOTATION(scoped_lockable)
#define CPUHP_GUARDED_BY(x) CPUHP_THREAD_ANNOTATION(guarded_by(x))
#define CPUHP_PT_GUARDED_BY(x) CPUHP_THREAD_ANNOTATION(pt_guarded_by(x))
#define CPUHP_REQUIRES(...) CPUHP_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define CPUHP_REQUIRES_SHARED(...) \
  CPUHP_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define CPUHP_ACQUIRE(...) CPUHP_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define CPUHP_ACQUIRE_SHARED(...) \
  CPUHP_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define CPUHP_RELEASE(...) CPUHP_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define CPUHP_RELEASE_SHARED(...) \
  CPUHP_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define CPUHP_TRY_ACQUIRE(...) \
  CPUHP_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define CPUHP_TRY_ACQUIRE_SHARED(...) \
  CPUHP_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
#define CPUHP_ACQUIRED_AFTER(...) CPUHP_THREAD_ANNOTATION(acquired_after(__VA_ARGS__))
#define CPUHP_EXCLUDES(...) CPUHP_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define CPUHP_ASSERT_CAPABILITY(x) CPUHP_THREAD_ANNOTATION(assert_capability(x))
#define CPUHP_RETURN_CAPABILITY(x) CPUHP_THREAD_ANNOTATION(lock_returned(x))
#define CPUHP_NO_THREAD_SAFETY_ANALYSIS CPUHP_THREAD_ANNOTATION(no_thread_safety_analysis)
