// A fixed set of threads running queued tasks: the multipart writers' part uploads run here, so the number of
// concurrent part uploads of a store is bounded by its thread count whatever the number of writers.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice::objstore::s3 {

class WorkerPool {
 public:
  /// Starts `threads` (at least 1) workers.
  explicit WorkerPool(int threads);
  /// Runs every queued task, then joins the workers.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  /// Queues `task`. Tasks must not throw and must not wait for other tasks of the same pool.
  void Submit(std::function<void()> task);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace sluice::objstore::s3
