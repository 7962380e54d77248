#include "core/background_thread.h"

#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <utility>

namespace enclave {
namespace {

void set_nice_19() {
  // setpriority(PRIO_PROCESS, tid) changes this thread only (Linux nice is per thread).
  (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 19);
}

}  // namespace

void mark_background_thread(const char* name) {
  (void)pthread_setname_np(pthread_self(), name);
  set_nice_19();  // first, so the thread is still at nice 19 if SCHED_IDLE is refused
  sched_param param{};
  param.sched_priority = 0;  // the only priority SCHED_IDLE accepts
  (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &param);
}

void mark_low_priority_thread(const char* name) {
  (void)pthread_setname_np(pthread_self(), name);
  int policy = 0;
  sched_param param{};
  if (pthread_getschedparam(pthread_self(), &policy, &param) == 0 && policy != SCHED_OTHER) {
    param.sched_priority = 0;
    (void)pthread_setschedparam(pthread_self(), SCHED_OTHER, &param);
  }
  set_nice_19();
}

BackstopThread::BackstopThread(std::string name, std::function<void()> flush)
    : name_(std::move(name)), flush_(std::move(flush)), thread_([this] { loop(); }) {}

BackstopThread::~BackstopThread() {
  stop();
}

void BackstopThread::wake() {
  {
    std::lock_guard lock(mu_);
    if (stopping_ || pending_) return;
    pending_ = true;
  }
  cv_.notify_one();
}

void BackstopThread::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void BackstopThread::loop() {
  mark_low_priority_thread(name_.c_str());
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stopping_ || pending_; });  // no timeout: asleep until needed
    if (stopping_) return;
    pending_ = false;
    lock.unlock();
    flush_();
    lock.lock();
  }
}

}  // namespace enclave
