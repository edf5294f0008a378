#include "net/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <stdexcept>

#include <dirent.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace infinity::metrics {

// -- recording ------------------------------------------------------------------------------------

namespace {

/// The bounds in whole nanoseconds, so recording compares integers.
constexpr auto bounds_ns = [] {
  std::array<uint64_t, latency_histogram::bounds.size()> out{};
  for (std::size_t i = 0; i < out.size(); ++i)
    out[i] = static_cast<uint64_t>(latency_histogram::bounds[i] * 1e9 + 0.5);
  return out;
}();

} // namespace

void latency_histogram::observe_ns(uint64_t nanoseconds) noexcept {
  std::size_t i = 0;
  while (i < bounds_ns.size() && nanoseconds > bounds_ns[i])
    ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_ns_.fetch_add(nanoseconds, std::memory_order_relaxed);
}

latency_histogram::snapshot latency_histogram::read() const noexcept {
  snapshot result;
  uint64_t running = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    result.cumulative[i] = running;
  }
  // Read without a lock while writers run: count and sum may be a few observations apart,
  // which Prometheus tolerates; the buckets themselves stay cumulative (each is monotonic).
  result.count = running;
  result.sum_seconds = static_cast<double>(sum_ns_.load(std::memory_order_relaxed)) / 1e9;
  return result;
}

const char* to_string(route r) {
  switch (r) {
  case route::set:
    return "/set";
  case route::get:
    return "/get";
  case route::join:
    return "/join";
  case route::remove:
    return "/remove";
  case route::transfer:
    return "/transfer-leader";
  case route::members:
    return "/members";
  case route::status:
    return "/status";
  case route::health:
    return "/health";
  case route::ready:
    return "/ready";
  case route::metrics:
    return "/metrics";
  case route::ui:
    return "/ui";
  case route::other:
    break;
  }
  return "other";
}

route route_of(std::string_view path) {
  for (std::size_t i = 0; i < route_count; ++i) {
    auto r = static_cast<route>(i);
    if (r != route::other && path == to_string(r))
      return r;
  }
  return route::other;
}

void node_metrics::record_request(route r, unsigned status, uint64_t nanoseconds) noexcept {
  auto index = static_cast<std::size_t>(r);
  auto code = std::find(tracked_codes.begin(), tracked_codes.end(), status) - tracked_codes.begin();
  requests[index][static_cast<std::size_t>(code)].fetch_add(1, std::memory_order_relaxed);
  request_seconds[index].observe_ns(nanoseconds);
}

int64_t steady_now_ns() noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string storage_problem(const std::string& directory, const node_metrics& counters,
                            std::chrono::nanoseconds stall) {
  auto started = counters.sync_started_ns.load(std::memory_order_relaxed);
  if (started != 0) {
    auto waited = steady_now_ns() - started;
    if (waited > stall.count())
      return "a sync in " + directory + " has not returned for " +
             std::to_string(waited / 1000000000) + " s";
  }
  struct statvfs fs {};
  if (::statvfs(directory.c_str(), &fs) != 0)
    return "cannot stat " + directory;
  if ((fs.f_flag & ST_RDONLY) != 0)
    return directory + " is on a read-only file system";
  // Below 1 MiB the next segment or hard_state replacement is about to fail.
  if (static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize < (uint64_t{1} << 20))
    return directory + " has less than 1 MiB free";
  return {};
}

process_facts read_process_facts() {
  process_facts facts;
  long page = ::sysconf(_SC_PAGESIZE);
  if (std::ifstream statm{"/proc/self/statm"}; statm) {
    double size = 0;
    double resident = 0;
    if (statm >> size >> resident) {
      facts.virtual_bytes = size * static_cast<double>(page);
      facts.resident_bytes = resident * static_cast<double>(page);
    }
  }
  if (DIR* dir = ::opendir("/proc/self/fd")) {
    double count = 0;
    while (auto* entry = ::readdir(dir))
      if (entry->d_name[0] != '.')
        ++count;
    ::closedir(dir);
    facts.open_fds = count - 1; // the descriptor opendir itself holds
  }
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY)
    facts.max_fds = static_cast<double>(limit.rlim_cur);
  rusage usage{};
  if (::getrusage(RUSAGE_SELF, &usage) == 0)
    facts.cpu_seconds = static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                        static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
  // Start time: field 22 of /proc/self/stat (clock ticks after boot) plus the boot time.
  std::ifstream stat{"/proc/self/stat"};
  std::string line;
  std::ifstream proc_stat{"/proc/stat"};
  std::string key;
  double boot_time = -1;
  while (proc_stat >> key) {
    if (key == "btime") {
      proc_stat >> boot_time;
      break;
    }
  }
  if (std::getline(stat, line) && boot_time >= 0) {
    // The command name (field 2) may hold spaces; fields after it follow the last ')'.
    auto close = line.rfind(')');
    if (close != std::string::npos) {
      std::string rest = line.substr(close + 2);
      std::size_t field = 3;
      std::size_t pos = 0;
      while (field < 22 && pos != std::string::npos) {
        pos = rest.find(' ', pos);
        if (pos != std::string::npos)
          ++pos;
        ++field;
      }
      if (pos != std::string::npos) {
        double ticks = std::strtod(rest.c_str() + pos, nullptr);
        facts.start_time_seconds = boot_time + ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
      }
    }
  }
  return facts;
}

// -- exposition -----------------------------------------------------------------------------------

namespace {

bool valid_metric_name(std::string_view name) {
  if (name.empty())
    return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
      return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  return valid_metric_name(name) && name.find(':') == std::string_view::npos &&
         name.rfind("__", 0) != 0;
}

bool ends_with(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

} // namespace

std::string metrics_writer::escape_label(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string metrics_writer::escape_help(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string metrics_writer::format_value(double value) {
  if (std::isnan(value))
    return "NaN";
  if (std::isinf(value))
    return value > 0 ? "+Inf" : "-Inf";
  // Integers (counters, indexes) exactly, without an exponent, up to 2^53.
  if (value == std::floor(value) && std::fabs(value) < 9007199254740992.0) {
    char buffer[32];
    auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, static_cast<int64_t>(value));
    return ec == std::errc{} ? std::string(buffer, end) : std::string{"NaN"};
  }
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", value);
  // The shortest of %.15g..%.17g that reads back exactly: 0.1 prints as 0.1, not 0.1000...01.
  for (int precision = 15; precision < 17; ++precision) {
    char shorter[64];
    std::snprintf(shorter, sizeof shorter, "%.*g", precision, value);
    if (std::strtod(shorter, nullptr) == value)
      return shorter;
  }
  return buffer;
}

void metrics_writer::family(std::string_view name, std::string_view type, std::string_view help) {
  if (!valid_metric_name(name))
    throw std::invalid_argument("invalid metric name '" + std::string{name} + "'");
  if (type != "counter" && type != "gauge" && type != "histogram")
    throw std::invalid_argument("unsupported metric type '" + std::string{type} + "'");
  if (type == "counter" && !ends_with(name, "_total"))
    throw std::invalid_argument("counter '" + std::string{name} + "' must end in _total");
  if (std::find(started_.begin(), started_.end(), name) != started_.end())
    throw std::invalid_argument("metric family '" + std::string{name} + "' written twice");
  started_.emplace_back(name);
  current_ = std::string{name};
  current_type_ = std::string{type};
  out_ += "# HELP ";
  out_ += name;
  out_ += ' ';
  out_ += escape_help(help);
  out_ += "\n# TYPE ";
  out_ += name;
  out_ += ' ';
  out_ += type;
  out_ += '\n';
}

void metrics_writer::sample(std::string_view name, const labels& labels, double value) {
  if (current_.empty())
    throw std::logic_error("metrics_writer: a sample before any family");
  bool ok = name == current_;
  if (!ok && current_type_ == "histogram")
    ok = name == current_ + "_bucket" || name == current_ + "_sum" || name == current_ + "_count";
  if (!ok)
    throw std::invalid_argument("sample '" + std::string{name} + "' outside its family '" +
                                current_ + "'");
  out_ += name;
  if (!labels.empty()) {
    out_ += '{';
    bool first = true;
    for (const auto& [label, value_text] : labels) {
      if (!valid_label_name(label))
        throw std::invalid_argument("invalid label name '" + std::string{label} + "'");
      if (!first)
        out_ += ',';
      first = false;
      out_ += label;
      out_ += "=\"";
      out_ += escape_label(value_text);
      out_ += '"';
    }
    out_ += '}';
  }
  out_ += ' ';
  out_ += format_value(value);
  out_ += '\n';
}

void metrics_writer::histogram(const labels& base, const latency_histogram::snapshot& data) {
  auto with_le = base;
  with_le.emplace_back("le", "");
  for (std::size_t i = 0; i < data.cumulative.size(); ++i) {
    with_le.back().second = i < latency_histogram::bounds.size()
                                ? format_value(latency_histogram::bounds[i])
                                : std::string{"+Inf"};
    sample(current_ + "_bucket", with_le, static_cast<double>(data.cumulative[i]));
  }
  sample(current_ + "_sum", base, data.sum_seconds);
  sample(current_ + "_count", base, static_cast<double>(data.count));
}

std::string render_metrics(const raft_status& status, const node_metrics* counters,
                           const process_facts& process) {
  metrics_writer w;
  auto d = [](uint64_t v) { return static_cast<double>(v); };

  w.family("infinity_node_info", "gauge", "Constant 1, labelled with this node's identity.");
  w.sample(
      "infinity_node_info",
      {{"id", status.id}, {"cluster_id", status.cluster_id}, {"version", INFINITYSTORE_VERSION}},
      1);

  // -- Raft
  w.family("infinity_raft_term", "gauge", "Current Raft term.");
  w.sample("infinity_raft_term", {}, d(status.term));
  w.family("infinity_raft_role", "gauge",
           "1 for the role this node has now (follower, pre_candidate, candidate, leader, "
           "removed), 0 for the others.");
  std::string role = status.removed ? "removed" : to_string(status.role);
  for (const char* each : {"follower", "pre_candidate", "candidate", "leader", "removed"})
    w.sample("infinity_raft_role", {{"role", each}}, role == each ? 1 : 0);
  w.family("infinity_raft_has_leader", "gauge", "1 if this node knows a leader, else 0.");
  w.sample("infinity_raft_has_leader", {}, status.leader_id.empty() ? 0 : 1);
  w.family("infinity_raft_leader_changes_total", "counter",
           "Times this node saw a new leader (including the first one) since it started.");
  w.sample("infinity_raft_leader_changes_total", {}, d(status.leader_changes));
  w.family("infinity_raft_commit_index", "gauge", "Highest log index known to be committed.");
  w.sample("infinity_raft_commit_index", {}, d(status.commit_index));
  w.family("infinity_raft_applied_index", "gauge",
           "Highest log index applied to this node's state machine.");
  w.sample("infinity_raft_applied_index", {}, d(status.applied_index));
  w.family("infinity_raft_last_log_index", "gauge", "Index of the last entry in this node's log.");
  w.sample("infinity_raft_last_log_index", {}, d(status.last_log_index));
  w.family("infinity_raft_leader_commit_index", "gauge",
           "The leader's commit index as last reported to this node (its own on the leader).");
  w.sample("infinity_raft_leader_commit_index", {}, d(status.leader_commit));
  w.family("infinity_raft_log_entries", "gauge", "Entries in this node's log (after compaction).");
  w.sample("infinity_raft_log_entries", {}, d(status.log_entries));
  w.family("infinity_raft_snapshot_index", "gauge",
           "Last log index covered by the newest snapshot (0: none yet).");
  w.sample("infinity_raft_snapshot_index", {}, d(status.snapshot_index));
  w.family("infinity_raft_log_first_index", "gauge",
           "First index still in the log; entries before it were compacted into a snapshot.");
  w.sample("infinity_raft_log_first_index", {}, d(status.log_first_index));
  w.family("infinity_raft_appends_sent_total", "counter",
           "Leader: appends carrying entries sent to followers (heartbeats not counted).");
  w.sample("infinity_raft_appends_sent_total", {}, d(status.appends_sent));
  w.family("infinity_raft_append_entries_sent_total", "counter",
           "Leader: entries those appends carried; divided by appends, the mean batch size.");
  w.sample("infinity_raft_append_entries_sent_total", {}, d(status.entries_sent));
  w.family("infinity_raft_read_index_rounds_total", "counter",
           "Leader: heartbeat rounds that confirmed leadership for linearizable reads.");
  w.sample("infinity_raft_read_index_rounds_total", {}, d(status.read_rounds));
  w.family(
      "infinity_raft_read_index_reads_total", "counter",
      "Leader: linearizable reads those rounds confirmed; divided by rounds, reads per round.");
  w.sample("infinity_raft_read_index_reads_total", {}, d(status.reads_served));
  w.family("infinity_raft_members", "gauge", "Members of the configuration in effect, by kind.");
  w.sample("infinity_raft_members", {{"kind", "voter"}}, d(status.members.size()));
  w.sample("infinity_raft_members", {{"kind", "learner"}}, d(status.learners.size()));
  w.family("infinity_raft_proposals_committed_total", "counter",
           "Write proposals made through this node that were committed and applied.");
  w.sample("infinity_raft_proposals_committed_total", {}, d(status.proposals_committed));
  w.family("infinity_raft_proposals_failed_total", "counter",
           "Write proposals made through this node that were refused, timed out or whose "
           "outcome is unknown.");
  w.sample("infinity_raft_proposals_failed_total", {}, d(status.proposals_failed));
  // Per-peer series exist only on the leader (it alone tracks its followers).
  w.family("infinity_raft_peer_match_index", "gauge",
           "Leader only: highest log index known to be replicated on each follower.");
  for (const auto& p : status.progress)
    w.sample("infinity_raft_peer_match_index", {{"peer", p.id}}, d(p.match_index));
  w.family("infinity_raft_peer_lag_entries", "gauge",
           "Leader only: entries each follower is behind the leader's last log index.");
  for (const auto& p : status.progress)
    w.sample("infinity_raft_peer_lag_entries", {{"peer", p.id}}, d(p.lag));
  w.family("infinity_raft_peer_connected", "gauge",
           "Leader only: 1 if the connection to each follower is up, else 0.");
  for (const auto& p : status.progress)
    w.sample("infinity_raft_peer_connected", {{"peer", p.id}}, p.connected ? 1 : 0);
  w.family("infinity_raft_peer_last_contact_seconds", "gauge",
           "Leader only: time since each follower last answered.");
  for (const auto& p : status.progress)
    w.sample("infinity_raft_peer_last_contact_seconds", {{"peer", p.id}},
             d(p.last_contact_ms) / 1000.0);

  if (counters != nullptr) {
    // -- HTTP
    w.family("infinity_http_requests_total", "counter",
             "Client HTTP requests answered, by route and status code.");
    for (std::size_t r = 0; r < route_count; ++r)
      for (std::size_t c = 0; c <= tracked_codes.size(); ++c) {
        auto n = counters->requests[r][c].load(std::memory_order_relaxed);
        if (n == 0)
          continue; // a series appears with its first request; counters start at 0 implicitly
        w.sample("infinity_http_requests_total",
                 {{"route", to_string(static_cast<route>(r))},
                  {"code", c < tracked_codes.size() ? std::to_string(tracked_codes[c]) : "other"}},
                 d(n));
      }
    w.family("infinity_http_request_duration_seconds", "histogram",
             "Time from a complete request to its response being ready, by route.");
    for (std::size_t r = 0; r < route_count; ++r) {
      auto data = counters->request_seconds[r].read();
      if (data.count == 0)
        continue;
      w.histogram({{"route", to_string(static_cast<route>(r))}}, data);
    }
    w.family("infinity_http_open_connections", "gauge", "Client connections open now.");
    w.sample("infinity_http_open_connections", {},
             static_cast<double>(counters->open_connections.load(std::memory_order_relaxed)));
    w.family("infinity_http_connections_accepted_total", "counter",
             "Client connections accepted (served or answered 503 over the limit).");
    w.sample("infinity_http_connections_accepted_total", {},
             d(counters->connections_accepted.load(std::memory_order_relaxed)));

    // -- storage
    w.family("infinity_storage_fsync_duration_seconds", "histogram",
             "Duration of the storage sync (fdatasync) that makes a persist request durable.");
    w.histogram({}, counters->fsync_seconds.read());
    w.family("infinity_storage_persist_requests_total", "counter",
             "Persist requests (group commits) written to storage.");
    w.sample("infinity_storage_persist_requests_total", {},
             d(counters->persist_requests.load(std::memory_order_relaxed)));
    w.family("infinity_storage_entry_bytes_written_total", "counter",
             "Bytes of log entry data handed to storage (payloads, without framing).");
    w.sample("infinity_storage_entry_bytes_written_total", {},
             d(counters->entry_bytes_written.load(std::memory_order_relaxed)));
  }

  // -- process (the names every Prometheus client library uses)
  auto maybe = [&](const char* name, const char* type, const char* help, double value) {
    if (value < 0)
      return;
    w.family(name, type, help);
    w.sample(name, {}, value);
  };
  maybe("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
        process.resident_bytes);
  maybe("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
        process.virtual_bytes);
  maybe("process_open_fds", "gauge", "Number of open file descriptors.", process.open_fds);
  maybe("process_max_fds", "gauge", "Maximum number of open file descriptors.", process.max_fds);
  maybe("process_cpu_seconds_total", "counter", "Total user and system CPU time in seconds.",
        process.cpu_seconds);
  maybe("process_start_time_seconds", "gauge",
        "Start time of the process since the Unix epoch in seconds.", process.start_time_seconds);
  return w.text();
}

} // namespace infinity::metrics
