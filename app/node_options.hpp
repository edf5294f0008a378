// Command line and config file of an InfinityStore node (`infinitystore --help`).
//
// Both sources use the same names: `--node-id x` on the command line is `node-id = x` in the
// file given by `--config`. The command line wins over the file, the file over the defaults.
// Kept free of CAF and Beast so it is cheap to unit test.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace infinity {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };

/// text: one human-readable line per event; json: one JSON object per line (for Loki, ELK).
enum class log_format { text, json };

const char* to_string(log_level level);

struct node_options {
  std::string node_id = "node1";
  /// HOST:PORT this node's Raft endpoint listens on.
  std::string raft_addr = "localhost:8000";
  /// HOST:PORT, or :PORT for all interfaces; port 0 picks a free one.
  std::string http_addr = ":8001";
  std::string config_file;
  /// Defaults to data/<node-id>.
  std::string data_dir;
  /// HOST:PORT of a running member to join through (empty: none).
  std::string join;
  /// id -> Raft HOST:PORT, including this node; empty when not given.
  std::map<std::string, std::string> initial_cluster;
  log_level level = log_level::info;
  log_format format = log_format::text;
  /// GET /ready fails while the applied index trails the leader's commit by more entries.
  uint64_t ready_max_lag = 1000;
  std::size_t max_body_bytes = std::size_t{1} << 20;
  /// How long a client request may wait for the Raft node.
  uint32_t request_timeout_ms = 5000;

  // Client port limits and security (see http_server_options for what each one bounds).
  std::size_t http_max_connections = 4096;
  std::size_t http_max_queued_response_bytes = std::size_t{4} << 20;
  std::size_t http_max_header_bytes = 16 * 1024;
  uint32_t http_idle_timeout_ms = 60000;
  uint32_t http_header_timeout_ms = 10000;
  uint32_t http_body_timeout_ms = 30000;
  uint32_t http_write_timeout_ms = 30000;
  /// PEM files; both or neither (then plain HTTP).
  std::string http_tls_cert;
  std::string http_tls_key;
  std::string admin_token_file;
  std::string client_token_file;
  /// Raft port: PEM files, all three or none. Without them the Raft port is plain TCP, which
  /// only a loopback --raft-addr or raft_insecure allows.
  std::string raft_tls_cert;
  std::string raft_tls_key;
  std::string raft_tls_ca;
  bool raft_insecure = false;
  /// The tokens read from those files (empty when not given).
  std::string admin_token;
  std::string client_token;

  // Snapshots and log compaction.
  uint64_t snapshot_entries = 10000;
  uint64_t snapshot_bytes = uint64_t{32} << 20;
  uint64_t snapshot_keep_tail = 1024;
  std::size_t snapshot_retain = 2;
};

struct options_outcome {
  enum class action {
    run,
    /// `text` is the usage; exit 0.
    help,
    /// `text` is the version line; exit 0.
    version,
    /// `text` is a one-line error naming the option; exit non-zero.
    fail,
  };
  action what = action::run;
  node_options options;
  std::string text;
};

/// Whether a Raft HOST:PORT is on the loopback interface (localhost, 127.0.0.0/8, ::1).
bool is_loopback_address(const std::string& host_port);

/// Never throws; every problem becomes `action::fail`.
options_outcome parse_node_options(int argc, const char* const* argv);

/// Convenience for tests: arguments without the program name.
options_outcome parse_node_options(const std::vector<std::string>& args);

} // namespace infinity
