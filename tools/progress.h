// A progress line on stderr for runs longer than a few seconds.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace hisa::tools {

/// Reports "hisa <command> [step/total] what" on stderr once a run has taken kQuietSeconds:
/// rewritten in place with '\r' when stderr is a terminal, one plain line per step otherwise.
/// Short runs print nothing. A watcher thread shows a long first step without waiting for the
/// next one.
class Progress {
 public:
  Progress(std::string command, int total_steps);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  /// Starts step `step` (1-based), described by `what`.
  void Step(int step, const std::string& what);

 private:
  static constexpr std::chrono::seconds kQuiet{3};

  void Watch();
  void ShowLocked();  // with mutex_ held

  const std::string command_;
  const int total_steps_;
  const bool terminal_;
  const std::chrono::steady_clock::time_point start_;

  std::mutex mutex_;
  std::condition_variable changed_;
  std::string line_;        // the current step's text
  bool line_shown_ = true;  // nothing to print until the first Step
  bool anything_shown_ = false;
  size_t shown_width_ = 0;
  bool done_ = false;
  std::thread watcher_;
};

}  // namespace hisa::tools
