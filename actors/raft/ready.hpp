// What one step of the Raft core asks the outside world to do (etcd-io/raft's `Ready`).
//
// The core never sends, writes or applies anything itself: after every input the node actor
// takes the `ready` and carries it out, in this order: start the persist request (if any), send
// the messages, hand the apply batches to the state machine, answer the clients, pass the
// effects to the observer, log the events. Messages that must wait for durability are held back
// inside the core and appear in a later `ready`, so the order above is always safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "actors/raft/membership.hpp"
#include "actors/types.hpp"

namespace infinity {

/// Every message one Raft node sends another.
using peer_rpc = std::variant<request_vote, vote_reply, append_entries, append_reply,
                              forward_request, forward_reply, join_probe, join_probe_reply,
                              timeout_now, install_snapshot, install_snapshot_reply>;

struct outbound_message {
  std::string to;
  peer_rpc rpc;
};

/// The answer to a local client request, by the request id the node actor chose.
struct client_answer {
  uint64_t request_id = 0;
  client_reply reply;
};

/// Committed entries to apply. `epoch` changes when the state machine is reset (a node that
/// joins another cluster discards its own), so answers to batches of an older epoch are ignored.
struct apply_work {
  uint64_t epoch = 0;
  apply_batch batch;
};

/// Something the node's surroundings must do, sent to the node's observer as a message.
struct raft_effect {
  enum class kind {
    /// The membership in effect changed: connect to every member (`members`).
    membership_changed,
    /// Connect to a node that is not a member yet (`id` at `address`): about to be added, or
    /// the leader that is adding this node.
    dial,
    /// A node that was dialled for a join that did not happen (`id`): hang up.
    hang_up,
    /// Discard the state machine's contents (this node joins another cluster).
    reset_state_machine,
    /// Leader: read `length` bytes at `offset` of snapshot (`snapshot`) for follower `id`, and
    /// feed them to `snapshot_chunk_read`.
    read_snapshot_chunk,
    /// Follower: store `data` at `offset` of the snapshot being received (`snapshot`, with
    /// `last` set on its final chunk), and report with `snapshot_chunk_stored`.
    store_snapshot_chunk,
    /// Follower: load the received snapshot (`snapshot`) into the state machine, and report
    /// with `state_machine_restored`.
    restore_state_machine,
  };
  kind what = kind::membership_changed;
  std::string id;
  std::string address;
  membership members;
  // Snapshot effects.
  snapshot_info snapshot;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string data;
  bool last = false;
};

inline raft_effect effect_of(raft_effect::kind what, std::string id = {}, std::string address = {},
                             membership members = {}) {
  raft_effect effect;
  effect.what = what;
  effect.id = std::move(id);
  effect.address = std::move(address);
  effect.members = std::move(members);
  return effect;
}

struct ready {
  std::optional<persist_request> persist;
  std::vector<outbound_message> messages;
  std::vector<apply_work> apply;
  std::vector<client_answer> answers;
  std::vector<raft_effect> effects;
  /// One line per event that matters (role change, term, leader, membership, violations).
  std::vector<std::string> events;
  /// Proposals were appended: call `flush()` once the mailbox holds no more of them, so they
  /// share one append to the followers.
  bool flush_requested = false;

  bool empty() const {
    return !persist && messages.empty() && apply.empty() && answers.empty() && effects.empty() &&
           events.empty() && !flush_requested;
  }
};

} // namespace infinity
