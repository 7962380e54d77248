// Test helper shared by tests/audit and tests/store: the nice value of this process's thread
// named `name` (Linux: per-thread priorities under /proc/self/task), polled for up to ~5 s since
// a thread names itself as it starts; 100 when no such thread shows up.
#pragma once

#include <sys/resource.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace enclave::testing {

inline int nice_of_thread_named(const std::string& name, int want) {
  int found = 100;
  for (int attempt = 0; attempt < 500 && found != want; ++attempt) {
    for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
      std::ifstream comm(task.path() / "comm");
      std::string comm_name;
      std::getline(comm, comm_name);
      if (comm_name != name) continue;
      errno = 0;
      const int nice =
          getpriority(PRIO_PROCESS, static_cast<id_t>(std::stoi(task.path().filename())));
      if (errno == 0) found = nice;
    }
    if (found != want) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return found;
}

}  // namespace enclave::testing
