#include "core/background_thread.h"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

namespace enclave {

void mark_background_thread(const char* name) {
  (void)pthread_setname_np(pthread_self(), name);
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
}

}  // namespace enclave
