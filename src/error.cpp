#include "cpuhp/error.h"

namespace cpuhp {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "cpuhp"; }
  std::string message(int code) const override {
    switch (static_cast<Errc>(code)) {
      case Errc::kOk:
        return "success";
      case Errc::kInvalidArgument:
        return "invalid argument";
      case Errc::kOutOfRange:
        return "out of range";
      case Errc::kNotPresent:
        return "CPU not present";
      case Errc::kAlreadyInState:
        return "already in the requested state";
      case Errc::kLastCpu:
        return "last online CPU";
      case Errc::kBusy:
        return "busy";
      case Errc::kNotFound:
        return "not found";
      case Errc::kCallbackFailed:
        return "callback failed";
      case Errc::kWouldDeadlock:
        return "would deadlock";
      case Errc::kSystem:
        return "system call failed";
    }
    return "unknown cpuhp error";
  }
};

}  // namespace

const std::error_category& cpuhp_category() noexcept {
  static const Category category;
  return category;
}

}  // namespace cpuhp
