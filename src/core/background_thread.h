// Marks the calling thread as background work (audit and usage writers): names it, for ps/top
// and tests, and lowers it to nice 19 (this thread only: Linux nice is per thread), so that it
// never takes a core from the io threads, whose wake-ups preempt it at once. Not SCHED_IDLE:
// other nice'd work on the machine could starve such a writer until its queue fills (audit
// appends then fail closed, usage rows are dropped). Best effort: no error.
#pragma once

namespace enclave {

void mark_background_thread(const char* name);

}  // namespace enclave
