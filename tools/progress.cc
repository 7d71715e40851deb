#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace hisa::tools {

Progress::Progress(std::string command, int total_steps)
    : command_(std::move(command)),
      total_steps_(total_steps),
      terminal_(isatty(fileno(stderr)) != 0),
      start_(std::chrono::steady_clock::now()),
      watcher_([this] { Watch(); }) {}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    done_ = true;
    if (terminal_ && anything_shown_) {
      std::fprintf(stderr, "\r%s\r", std::string(shown_width_, ' ').c_str());
      std::fflush(stderr);
    }
  }
  changed_.notify_all();
  watcher_.join();
}

void Progress::Step(int step, const std::string& what) {
  std::lock_guard<std::mutex> lock(mutex_);
  line_ = fmt::format("hisa {} [{}/{}] {}", command_, step, total_steps_, what);
  line_shown_ = false;
  if (std::chrono::steady_clock::now() - start_ >= kQuiet) ShowLocked();
}

void Progress::Watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (changed_.wait_until(lock, start_ + kQuiet, [this] { return done_; })) return;
  ShowLocked();
}

void Progress::ShowLocked() {
  if (line_shown_ || done_) return;
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string text = fmt::format("{} ({:.0f} s)", line_, seconds);
  if (terminal_) {
    const size_t clear = shown_width_ > text.size() ? shown_width_ - text.size() : 0;
    std::fprintf(stderr, "\r%s%s", text.c_str(), std::string(clear, ' ').c_str());
    shown_width_ = text.size();
  } else {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
  line_shown_ = true;
  anything_shown_ = true;
}

}  // namespace hisa::tools
