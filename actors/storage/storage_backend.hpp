// The storage seam of a Raft node.
//
// A node's durable state (hard state + log) is written through a `storage_backend` owned by the
// node's storage actor (`storage_actor.hpp`). The Raft actor never touches it directly: it sends
// `persist_request`s and waits for `(persisted_atom, seq)` before it grants a vote, acknowledges
// an append, or counts its own copy as a leader.
#pragma once

#include <cstdint>

#include "actors/types.hpp"

namespace infinity {

/// How soon a backend would like `maintain` to be called, most urgent last.
enum class maintenance_need : uint8_t {
  none = 0,
  /// Once the node has been idle for a moment (~10 ms).
  when_idle = 1,
  /// When idle, or else within about a second.
  within_a_second = 2,
  /// As soon as the request at hand has been answered.
  now = 3,
};

class storage_backend {
 public:
  virtual ~storage_backend() = default;

  /// Reads back everything that was synced. Called once, before the node's actors start.
  /// Throws `std::runtime_error` with a clear message when the data cannot be trusted.
  virtual recovered_state recover() = 0;

  /// Applies `request` (hard state, then truncation, then append). Need not be durable yet.
  virtual void write(const persist_request& request) = 0;

  /// Makes every earlier `write` durable; a crash after it returns loses none of them.
  /// Throws `std::runtime_error` on I/O errors (the node must stop: it cannot keep promises).
  virtual void sync() = 0;

  /// Deferred work no request waits for, such as evidence that helps a later recovery. The
  /// storage actor asks after every request and calls `maintain` accordingly; `idle` says no
  /// request arrived for a moment and nothing is waiting for a sync. Throws like `sync`.
  virtual maintenance_need maintenance_needed() const { return maintenance_need::none; }
  virtual void maintain(bool /*idle*/) {}
};

} // namespace infinity
