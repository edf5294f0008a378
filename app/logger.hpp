// The node's log: one line per event on stderr, from any thread.
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

#include "app/node_options.hpp"

namespace infinity {

class logger {
 public:
  explicit logger(log_level level) : level_(level) {}

  bool enabled(log_level level) const { return level <= level_; }

  void write(log_level level, const std::string& line) const {
    if (!enabled(level))
      return;
    auto now = std::chrono::system_clock::now();
    auto seconds = std::chrono::system_clock::to_time_t(now);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[32];
    std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    char level_text[8];
    std::snprintf(level_text, sizeof level_text, "%-5s", to_string(level));
    std::lock_guard<std::mutex> guard{mutex_};
    std::fprintf(stderr, "%s.%03dZ %s %s\n", stamp, static_cast<int>(millis), level_text,
                 line.c_str());
    std::fflush(stderr);
  }

 private:
  log_level level_;
  mutable std::mutex mutex_;
};

} // namespace infinity
