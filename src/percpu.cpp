// SPDX-License-Identifier: MIT
// PerCpu: the non-template half (registration with the Domain's shared
// percpu state, the nearest-online search). See cpuhp/percpu.h.
#include "cpuhp/percpu.h"

#include <stdexcept>
#include <system_error>

#include "cpuhp/diagnostics.h"
#include "strf.h"

namespace cpuhp::detail {

namespace {

// Its address identifies the calling thread (as the Domain's writer token does).
thread_local char tl_percpu_thread_token;

}  // namespace

unsigned nearest_online(const CpuMask& online, unsigned cpu) noexcept {
  const unsigned capacity = online.capacity();
  for (;;) {
    unsigned c = online.next(cpu);
    if (c >= capacity) c = online.first();
    if (c < capacity) return c;
    // A walk racing two transitions may see no CPU (words are loaded one at a
    // time); the Domain always has one online, so look again.
  }
}

PerCpuBase::PerCpuBase(Domain& domain, std::string name, CpuFn startup, CpuFn teardown)
    : domain_(&domain),
      online_(&domain.online()),
      capacity_(domain.capacity()),
      name_(std::move(name)),
      prepared_(domain.capacity()),
      startup_(startup),
      teardown_(teardown) {}

PerCpuBase::~PerCpuBase() = default;

int PerCpuBase::instance_startup(unsigned cpu, void* instance) {
  auto* self = static_cast<PerCpuBase*>(instance);
  return self->startup_(self, cpu);
}

int PerCpuBase::instance_teardown(unsigned cpu, void* instance) {
  auto* self = static_cast<PerCpuBase*>(instance);
  return self->teardown_(self, cpu);
}

bool PerCpuBase::registering_on_this_thread() const noexcept {
  return registering_thread_.load(std::memory_order_relaxed) == &tl_percpu_thread_token;
}

Error PerCpuBase::named(const Error& e) const {
  return Error(e.code(),
               strf("cpuhp::PerCpu '%s': %s", name_.c_str(), e.message().c_str()),
               e.cause());
}

void PerCpuBase::throw_error(const Error& e) {
  throw std::system_error(make_error_code(e.code()), e.message());
}

Status PerCpuBase::attach() {
  // Where registration would deadlock (an RCU read section, the hotplug read
  // lock, a callback, a scope) the Domain refuses it; named() says which PerCpu.
  Result<StateId> id = domain_->find_state(kPerCpuStateName);
  if (!id) {
    id = domain_->setup_multi_state(Section::kPrepare, kPerCpuStateName,
                                    &PerCpuBase::instance_startup,
                                    &PerCpuBase::instance_teardown);
    // Another PerCpu may have installed it since our look-up.
    if (!id && id.error().code() == Errc::kBusy) {
      if (Result<StateId> again = domain_->find_state(kPerCpuStateName)) id = again;
    }
    if (!id) return named(id.error());
  }

  registering_thread_.store(&tl_percpu_thread_token, std::memory_order_relaxed);
  Status s = domain_->add_instance(*id, static_cast<PerCpuBase*>(this));
  registering_thread_.store(nullptr, std::memory_order_relaxed);
  if (!s) return named(s.error());
  state_ = *id;
  return {};
}

void PerCpuBase::detach() noexcept {
  if (state_ == kStateOffline) return;
  registering_thread_.store(&tl_percpu_thread_token, std::memory_order_relaxed);
  Status s = domain_->remove_instance(state_, static_cast<PerCpuBase*>(this));
  registering_thread_.store(nullptr, std::memory_order_relaxed);
  if (!s) {
    // The instance would stay registered with a pointer to a dead object.
    detail::fatal("PerCpu",
                  "'%s' destroyed where it cannot unregister (%s); destroy it outside "
                  "RCU read sections, hotplug read locks, hotplug callbacks and "
                  "register_begin() scopes",
                  name_.c_str(), s.error().message().c_str());
  }
  state_ = kStateOffline;
}

}  // namespace cpuhp::detail
