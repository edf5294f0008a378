// One InfinityStore node: storage, the actors, the peer connector and the HTTP server, started
// and stopped in the order that keeps failures clean.
//
// start(): the data directory (recover, identity checks, bootstrap), the HTTP listener (bind),
// the actors, the Raft port (publish). A failure at any step tears down what was started, undoes
// a bootstrap this start wrote, and returns one clear line. stop() runs the other way: stop
// accepting and close connections, then stop the actors and wait.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "app/logger.hpp"
#include "app/node_options.hpp"

namespace infinity {

class node_runtime {
 public:
  node_runtime(node_options options, const logger& log);
  ~node_runtime();

  node_runtime(const node_runtime&) = delete;
  node_runtime& operator=(const node_runtime&) = delete;

  /// Empty on success, else why the node cannot start (and nothing is left running).
  std::string start();

  /// Idempotent.
  void stop();

  /// Called (once, from an actor thread) when the node cannot go on: its Raft actor stopped
  /// (e.g. storage failed an fsync) or its join was refused for good.
  std::function<void()> on_fatal;

  /// 0 unless the node stopped because of a fatal error.
  int exit_code() const { return exit_code_.load(); }

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
  std::atomic<int> exit_code_{0};
};

} // namespace infinity
