// SPDX-License-Identifier: MIT
// The translation unit that builds the test binaries' precompiled header
// (tests/CMakeLists.txt, cpuhp_test_pch); it has no code of its own.
