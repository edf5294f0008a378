// What an HTTP session reads without a message to another actor: the KV actor's current state
// machine, and whether the Raft node was removed from the cluster.
//
// Writers: the KV actor publishes its state machine when it starts and whenever it replaces it
// (reset); the Raft node publishes a restored one before it tells the KV actor to install it (so
// no read the core answers after the install can find the old state) and publishes `removed`
// after every input. Readers: any thread.
//
// Freshness: a get sees every entry the KV actor applied before the get took the shard's lock.
// The Raft read barrier answers only once the KV actor reported applying the read index, so a get
// after a passed barrier is linearizable, exactly as a get message to the KV actor was; a stale
// read is as fresh as this node's applied state, as before. What changes is the cost: a stale
// read is one lookup under a shared lock on the session's thread instead of two request/response
// round trips (Raft status, KV get), each with a timer on CAF's clock thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace infinity {

class kv_state_machine;

class local_read_view {
 public:
  local_read_view();

  std::optional<std::string> get(const std::string& key) const;

  /// The configuration index that removed this node, 0 while it is a member.
  uint64_t removed_at_index() const { return removed_at_index_.load(std::memory_order_acquire); }

  void publish(std::shared_ptr<const kv_state_machine> machine);
  void set_removed_at_index(uint64_t index) {
    removed_at_index_.store(index, std::memory_order_release);
  }

 private:
  /// Only through std::atomic_load / std::atomic_store (C++17's atomic shared_ptr access).
  std::shared_ptr<const kv_state_machine> machine_;
  std::atomic<uint64_t> removed_at_index_{0};
};

} // namespace infinity
