// Test helpers shared by tests/audit and tests/store: the scheduling and the wake-ups of this
// process's thread named `name` (Linux: per-thread figures under /proc/self/task), polled since a
// thread names itself as it starts.
#pragma once

#include <sched.h>
#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace enclave::testing {

// Calls fn(task directory) for each thread of this process named `name`, until fn returns true.
template <typename Fn>
void for_each_thread_named(const std::string& name, Fn fn) {
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string comm_name;
    std::getline(comm, comm_name);
    if (comm_name == name && fn(task.path())) return;
  }
}

// Policy and nice value of this process's thread named `name`, polled for up to 10 s until they
// are `want_policy` and 19 (a thread names itself first, then sets them); what was last seen
// otherwise, policy -1 when no such thread showed up.
struct NamedThreadScheduling {
  int policy = -1;
  int nice = 100;
};
inline NamedThreadScheduling scheduling_of_thread_named(const std::string& name, int want_policy) {
  NamedThreadScheduling found;
  for (int attempt = 0; attempt < 1000 && (found.policy != want_policy || found.nice != 19);
       ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    for_each_thread_named(name, [&](const std::filesystem::path& task) {
      const pid_t tid = static_cast<pid_t>(std::stoi(task.filename()));
      errno = 0;
      const int nice = getpriority(PRIO_PROCESS, static_cast<id_t>(tid));
      const int policy = sched_getscheduler(tid);
      if (errno == 0 && policy >= 0) found = {policy, nice};
      return false;  // the last one seen, as before
    });
  }
  return found;
}

// Voluntary context switches so far of this process's thread named `name` (each is a wake-up
// after a wait), -1 when there is no such thread.
inline long voluntary_switches_of_thread_named(const std::string& name) {
  long switches = -1;
  for_each_thread_named(name, [&](const std::filesystem::path& task) {
    std::ifstream status(task / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
        switches = std::stol(line.substr(24));
        return true;
      }
    }
    return false;
  });
  return switches;
}

// Wake-ups of the thread named `name` during `window` (-1 when there is no such thread).
inline long wakeups_of_thread_named_during(const std::string& name,
                                           std::chrono::milliseconds window) {
  const long before = voluntary_switches_of_thread_named(name);
  std::this_thread::sleep_for(window);
  const long after = voluntary_switches_of_thread_named(name);
  return before < 0 || after < 0 ? -1 : after - before;
}

}  // namespace enclave::testing
