// cpuhp/error.h — how every fallible cpuhp call reports failure.
//
// Contract: a call that can fail returns `Status` (no value) or `Result<T>`.
// On failure nothing was changed (the call is all-or-nothing) and the error
// carries an `Errc` for programs to test and a message for people that names
// the CPU, state or text at fault and, where one exists, the safe alternative.
// Results are [[nodiscard]]: ignoring a failure is a compile-time warning.
// Thread-safety: values; no shared state.
#pragma once

#include <cassert>
#include <string>
#include <system_error>
#include <utility>
#include <variant>

namespace cpuhp {

enum class Errc {
  kOk = 0,
  kInvalidArgument,  // malformed text, bad option value
  kOutOfRange,       // CPU id or count beyond capacity
  kNotPresent,       // CPU not present in the domain
  kAlreadyInState,   // CPU already at the requested state
  kLastCpu,          // would take the last online CPU down
  kBusy,             // hotplug disabled, or a name already in use
  kNotFound,         // unknown state or notifier
  kCallbackFailed,   // a startup callback failed or threw; rolled back
  kWouldDeadlock,    // the call cannot succeed from this context
  kSystem,           // an OS call failed
};

const std::error_category& cpuhp_category() noexcept;
inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), cpuhp_category()};
}

class [[nodiscard]] Error {
 public:
  // `cause`: the negative errno a failing callback returned, if any.
  Error(Errc code, std::string message, int cause = 0)
      : code_(code), message_(std::move(message)), cause_(cause) {}
  Errc code() const noexcept { return code_; }
  int cause() const noexcept { return cause_; }
  std::error_code error_code() const noexcept { return make_error_code(code_); }
  const std::string& message() const noexcept { return message_; }

 private:
  Errc code_;
  std::string message_;
  int cause_;
};

// Result<T>: a T or an Error (the subset of C++23 std::expected that cpuhp needs).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}      // NOLINT: implicit by design
  Result(Error error) : v_(std::move(error)) {}  // NOLINT
  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const {
    assert(!ok());
    return std::get<1>(v_);
  }

 private:
  std::variant<T, Error> v_;
};

// Status: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT
  bool ok() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  const Error& error() const {
    assert(!ok_);
    return error_;
  }

 private:
  Error error_{Errc::kOk, {}};
  bool ok_ = true;
};

}  // namespace cpuhp

template <>
struct std::is_error_code_enum<cpuhp::Errc> : std::true_type {};
