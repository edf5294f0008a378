// Metrics of a node in the Prometheus text exposition format (version 0.0.4), without a client
// library (Debian 12 packages none for C++).
//
// Two halves:
//   * recording: `latency_histogram` and `node_metrics`, plain relaxed atomics, updated on I/O
//     threads and the storage thread. No lock and no allocation, so the write path pays a few
//     uncontended atomic adds per request.
//   * exposition: `metrics_writer` emits families (HELP, TYPE, samples) with escaping and number
//     formatting as the format specifies; `render_metrics` writes everything a node exports,
//     from the Raft status (asked of the Raft actor per scrape) and the recorded counters.
//
// Naming follows the Prometheus conventions: base units (seconds, bytes), `_total` for counters,
// `infinity_` for this program's series, `process_` for the standard process series.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "actors/types.hpp"

namespace infinity::metrics {

/// A histogram with fixed upper bounds (seconds), recorded lock-free.
class latency_histogram {
 public:
  /// 100 µs to 10 s, roughly x2.5 apart: loopback requests and fsyncs land in the low buckets,
  /// a stalled disk or a lost leader in the high ones.
  static constexpr std::array<double, 14> bounds = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 10.0};

  void observe_ns(uint64_t nanoseconds) noexcept;

  struct snapshot {
    /// Cumulative counts per bound, then +Inf (== count).
    std::array<uint64_t, bounds.size() + 1> cumulative{};
    double sum_seconds = 0;
    uint64_t count = 0;
  };
  snapshot read() const noexcept;

 private:
  std::array<std::atomic<uint64_t>, bounds.size() + 1> buckets_{};
  std::atomic<uint64_t> sum_ns_{0};
};

/// The routes of the client API, for per-route series (a fixed set: a label value per URL would
/// let clients create unbounded series).
enum class route : uint8_t {
  set,
  get,
  join,
  remove,
  transfer,
  members,
  status,
  health,
  ready,
  metrics,
  ui,
  other,
};
inline constexpr std::size_t route_count = 12;

const char* to_string(route r);

/// The route of a request path ("/get"); `other` for anything unknown.
route route_of(std::string_view path);

/// HTTP status codes the server answers, one counter each; anything else counts as "other".
inline constexpr std::array<unsigned, 16> tracked_codes = {200, 307, 400, 401, 403, 404, 405, 408,
                                                           409, 411, 413, 414, 431, 500, 501, 503};

/// Counters shared by the HTTP server, the storage actor and the metrics endpoint of one node.
/// Live as long as the longest of them (shared_ptr).
struct node_metrics {
  // -- HTTP (I/O threads)
  std::array<std::array<std::atomic<uint64_t>, tracked_codes.size() + 1>, route_count> requests{};
  std::array<latency_histogram, route_count> request_seconds{};
  std::atomic<int64_t> open_connections{0};
  std::atomic<uint64_t> connections_accepted{0};

  void record_request(route r, unsigned status, uint64_t nanoseconds) noexcept;

  // -- storage (the storage actor's thread)
  latency_histogram fsync_seconds;
  std::atomic<uint64_t> persist_requests{0};
  /// Bytes of log entry data handed to storage (payloads; framing not counted).
  std::atomic<uint64_t> entry_bytes_written{0};
  /// Steady-clock nanoseconds when the sync in progress began; 0 when none is.
  std::atomic<int64_t> sync_started_ns{0};
};

/// Why storage cannot take writes now (empty: it can): a read-only or nearly full (< 1 MiB) file
/// system under `directory`, or a sync that began more than `stall` ago and has not returned
/// (`counters.sync_started_ns`). One statvfs per call: cheap enough for a readiness probe.
std::string storage_problem(const std::string& directory, const node_metrics& counters,
                            std::chrono::nanoseconds stall);

/// Steady-clock time in nanoseconds, the clock of `sync_started_ns`.
int64_t steady_now_ns() noexcept;

/// Facts about this process read from /proc/self and getrusage; a missing one is -1.
struct process_facts {
  double resident_bytes = -1;
  double virtual_bytes = -1;
  double open_fds = -1;
  double max_fds = -1;
  double cpu_seconds = -1;
  double start_time_seconds = -1;
};
process_facts read_process_facts();

/// Writes the text format. Families must be started before their samples; a family's samples
/// must follow it without another family in between (the format requires it).
class metrics_writer {
 public:
  using labels = std::vector<std::pair<std::string_view, std::string>>;

  /// Starts a family: `# HELP` and `# TYPE` lines. `type` is counter, gauge or histogram.
  /// Throws std::invalid_argument for a name that is not [a-zA-Z_:][a-zA-Z0-9_:]*, a counter
  /// without `_total`, or a family started twice.
  void family(std::string_view name, std::string_view type, std::string_view help);

  /// One sample of the current family: `name` is the family's name or, for histograms, one
  /// of its `_bucket`, `_sum`, `_count` series.
  void sample(std::string_view name, const labels& labels, double value);

  /// A whole histogram sample set (buckets with `le`, sum, count) under the current family.
  void histogram(const labels& labels, const latency_histogram::snapshot& data);

  const std::string& text() const { return out_; }

  /// Label values: backslash, double quote and newline escaped.
  static std::string escape_label(std::string_view value);
  /// HELP text: backslash and newline escaped.
  static std::string escape_help(std::string_view text);
  /// Integers without a fraction, +Inf/-Inf/NaN as the format spells them, otherwise the
  /// shortest text that reads back as the same double.
  static std::string format_value(double value);

 private:
  std::string out_;
  std::string current_;
  std::string current_type_;
  std::vector<std::string> started_;
};

/// Everything a node exports. `status` comes from the Raft actor; `counters` may be null (then
/// HTTP and storage series are left out).
std::string render_metrics(const raft_status& status, const node_metrics* counters,
                           const process_facts& process);

/// The Content-Type of the text format.
inline constexpr const char* content_type = "text/plain; version=0.0.4; charset=utf-8";

} // namespace infinity::metrics
