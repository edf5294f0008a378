// The node's log: one line per event on stderr, from any thread.
//
// text: `2026-12-02T09:41:07.123Z info  node node1 ready: http 127.0.0.1:8001`
// json: `{"time":"2026-12-02T09:41:07.123Z","level":"info","node":"node1","event":"..."}`, one
//       object per line, so Loki, Elasticsearch or `jq` take it as it is.
#pragma once

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

#include "app/node_options.hpp"
#include "net/http_api.hpp"

namespace infinity {

class logger {
 public:
  explicit logger(log_level level, log_format format = log_format::text, std::string node = {})
      : level_(level), format_(format), node_(std::move(node)) {}

  bool enabled(log_level level) const { return level <= level_; }

  void write(log_level level, const std::string& line) const {
    if (!enabled(level))
      return;
    auto text = format_line(format_, node_, level, line, std::chrono::system_clock::now());
    std::lock_guard<std::mutex> guard{mutex_};
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  }

  /// One log line with its newline (pure, for tests).
  static std::string format_line(log_format format, const std::string& node, log_level level,
                                 const std::string& line,
                                 std::chrono::system_clock::time_point now) {
    auto seconds = std::chrono::system_clock::to_time_t(now);
    auto millis =
        std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() %
        1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char stamp[40];
    auto length = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
    std::snprintf(stamp + length, sizeof stamp - length, ".%03dZ", static_cast<int>(millis));
    if (format == log_format::json)
      return std::string{"{\"time\":\""} + stamp + "\",\"level\":\"" + to_string(level) +
             "\",\"node\":" + json_string(node) + ",\"event\":" + json_string(line) + "}\n";
    char level_text[8];
    std::snprintf(level_text, sizeof level_text, "%-5s", to_string(level));
    return std::string{stamp} + " " + level_text + " " + line + "\n";
  }

  /// A JSON string literal. Lines may quote client input, so invalid UTF-8 becomes '?' and
  /// control characters are escaped: every line stays one valid JSON object.
  static std::string json_string(const std::string& text) {
    bool utf8 = http::is_valid_utf8(text);
    std::string out = "\"";
    for (char c : text) {
      auto byte = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out += '\\';
        out += c;
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\t') {
        out += "\\t";
      } else if (byte < 0x20 || byte == 0x7f) {
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\u%04x", byte);
        out += escaped;
      } else if (byte >= 0x80 && !utf8) {
        out += '?';
      } else {
        out += c;
      }
    }
    return out + "\"";
  }

 private:
  log_level level_;
  log_format format_;
  std::string node_;
  mutable std::mutex mutex_;
};

} // namespace infinity
