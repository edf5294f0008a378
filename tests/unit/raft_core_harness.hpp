// A tiny hand-driven harness for the unit tests of the Raft core (tests/unit/raft_core_*.cpp):
// no simulator, no scheduler, no randomness beyond the cores' seeds.
//
// A `network` owns a few `raft_core`s and plays their surroundings: after every input it takes
// the core's `ready` and carries it out like the node actor would. Storage finishes each persist
// request at once and the state machine applies each batch at once, unless a test turns that off
// for a node (`auto_persist`, `auto_apply`) to do it by hand (`persist`, `apply`). Messages go into
// one FIFO queue that tests inspect (`sent<T>`), drop (`drop<T>`) and deliver (`deliver<T>`,
// `run`) by hand. A node's peers need not exist: messages to a missing node simply stay queued
// (and `run` drops them), so one core can be driven with hand-made messages from imaginary peers.
//
// After every step the harness checks that no core invariant broke, that every persist request
// continues the durable log contiguously, and (at the end) that no core saw a protocol violation
// unless the test expects some.
#pragma once

#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "actors/raft/core.hpp"

namespace infinity {

// Readable failures in BOOST_TEST.
inline std::ostream& operator<<(std::ostream& out, raft_role role) {
  return out << to_string(role);
}
inline std::ostream& operator<<(std::ostream& out, reply_status status) {
  return out << to_string(status);
}
inline std::ostream& operator<<(std::ostream& out, entry_kind kind) {
  return out << (kind == entry_kind::noop      ? "noop"
                 : kind == entry_kind::command ? "command"
                 : kind == entry_kind::config  ? "config"
                                               : "unknown");
}
inline std::ostream& operator<<(std::ostream& out, const log_entry& entry) {
  return out << "{term " << entry.term << ", index " << entry.index << ", " << entry.kind << ", '"
             << entry.data << "'}";
}

} // namespace infinity

namespace infinity::core_test {

// -- building blocks
// -------------------------------------------------------------------------------

inline log_entry command(uint64_t term, uint64_t index, std::string data = "w") {
  return log_entry{term, index, entry_kind::command, std::move(data)};
}

inline log_entry noop(uint64_t term, uint64_t index) {
  return log_entry{term, index, entry_kind::noop, {}};
}

inline log_entry config_entry(uint64_t term, uint64_t index, const membership& members) {
  return log_entry{term, index, entry_kind::config, encode_membership(members)};
}

/// Command entries at indexes 1, 2, ... with the given terms.
inline std::vector<log_entry> log_with_terms(std::initializer_list<uint64_t> terms) {
  std::vector<log_entry> entries;
  for (auto term : terms)
    entries.push_back(command(term, entries.size() + 1, "e" + std::to_string(entries.size() + 1)));
  return entries;
}

/// Terms of a log, in index order (for compact comparisons).
inline std::vector<uint64_t> terms_of(const raft_log& log) {
  std::vector<uint64_t> terms;
  for (auto i = log.first_index(); i <= log.last_index(); ++i)
    terms.push_back(log.at(i).term);
  return terms;
}

/// Election timeouts of 10..19 ticks, heartbeats every 2, re-probes after 4 silent ticks.
inline raft_config config_for(std::string id, std::vector<std::string> members) {
  raft_config config;
  config.id = std::move(id);
  config.http_address = "http-" + config.id;
  config.members = std::move(members);
  config.heartbeat_ticks = 2;
  config.election_ticks = 10;
  config.retransmit_ticks = 4;
  return config;
}

inline raft_config without_pre_vote(raft_config config) {
  config.pre_vote = false;
  return config;
}

inline recovered_state recovered(uint64_t term, std::vector<log_entry> entries = {},
                                 std::string voted_for = {}) {
  recovered_state state;
  state.state.term = term;
  state.state.voted_for = std::move(voted_for);
  state.entries = std::move(entries);
  return state;
}

// Hand-made messages (the harness stamps nothing: `from` is the imaginary sender).

inline append_entries append(std::string from, uint64_t term, uint64_t prev_index,
                             uint64_t prev_term, std::vector<log_entry> entries = {},
                             uint64_t leader_commit = 0) {
  append_entries request;
  request.from = std::move(from);
  request.term = term;
  request.prev_log_index = prev_index;
  request.prev_log_term = prev_term;
  request.entries = std::move(entries);
  request.leader_commit = leader_commit;
  return request;
}

inline request_vote vote_request(std::string from, uint64_t term, uint64_t last_index,
                                 uint64_t last_term, bool pre_vote = false) {
  request_vote request;
  request.from = std::move(from);
  request.term = term;
  request.last_log_index = last_index;
  request.last_log_term = last_term;
  request.pre_vote = pre_vote;
  return request;
}

inline vote_reply vote(std::string from, uint64_t term, bool granted, bool pre_vote = false) {
  vote_reply reply;
  reply.from = std::move(from);
  reply.term = term;
  reply.granted = granted;
  reply.pre_vote = pre_vote;
  return reply;
}

inline append_reply ack(std::string from, uint64_t term, uint64_t prev_index, uint64_t match,
                        uint64_t round = 0) {
  append_reply reply;
  reply.from = std::move(from);
  reply.term = term;
  reply.success = true;
  reply.prev_log_index = prev_index;
  reply.match_index = match;
  reply.round = round;
  return reply;
}

/// Matches every message type in `sent`, `drop` and `deliver`.
struct any_message {};

// -- the network
// -----------------------------------------------------------------------------------

struct envelope {
  std::string from;
  std::string to;
  peer_rpc rpc;
};

/// One core and what its surroundings saw of it.
struct node {
  raft_config config;
  uint64_t seed = 1;
  std::unique_ptr<raft_core> core;
  /// What storage holds durably (what a restart recovers).
  recovered_state disk;
  /// The persist request storage is working on, if any.
  std::optional<persist_request> in_flight;
  /// Every persist request the core made, in order.
  std::vector<persist_request> persists;
  /// Batches handed to the state machine and not yet applied.
  std::vector<apply_work> unapplied;
  /// What the state machine applied (cleared when the core resets it).
  std::vector<log_entry> applied;
  std::vector<client_answer> answers;
  std::vector<raft_effect> effects;
  std::vector<std::string> events;
  bool auto_persist = true;
  bool auto_apply = true;
};

class network {
 public:
  network() = default;

  /// Nodes `ids`, each bootstrapped with all of them as members, all connected. `tweak` adjusts
  /// every node's configuration.
  explicit network(std::vector<std::string> ids,
                   const std::function<void(raft_config&)>& tweak = {}) {
    uint64_t seed = 0;
    for (const auto& id : ids) {
      auto config = config_for(id, ids);
      if (tweak)
        tweak(config);
      add(std::move(config), recovered_state{}, ++seed);
    }
  }

  network(const network&) = delete;
  network& operator=(const network&) = delete;

  ~network() {
    if (expect_violations)
      return;
    for (auto& [id, n] : nodes_)
      BOOST_TEST(
          n.core->protocol_violations().empty(),
          id << " saw a protocol violation: "
             << (n.core->protocol_violations().empty() ? "" : n.core->protocol_violations()[0]));
  }

  /// Set by tests that feed malformed input on purpose.
  bool expect_violations = false;
  /// Messages sent and not delivered yet, oldest first.
  std::deque<envelope> queue;
  /// Every message delivered so far, in order.
  std::vector<envelope> history;

  /// Adds a node recovered from `state`, connected to every node already there.
  node& add(raft_config config, recovered_state state = {}, uint64_t seed = 1) {
    auto id = config.id;
    node fresh;
    fresh.config = config;
    fresh.seed = seed;
    fresh.disk = state;
    fresh.core = std::make_unique<raft_core>(std::move(config), std::move(state), seed);
    auto& added = nodes_.emplace(id, std::move(fresh)).first->second;
    step(id);
    for (auto& [other, n] : nodes_)
      if (other != id)
        connect(id, other);
    return added;
  }

  node& at(const std::string& id) {
    auto i = nodes_.find(id);
    BOOST_REQUIRE_MESSAGE(i != nodes_.end(), "no node " << id);
    return i->second;
  }
  raft_core& core(const std::string& id) { return *at(id).core; }
  bool has(const std::string& id) const { return nodes_.count(id) > 0; }

  // -- driving one core -------------------------------------------------------------------------

  /// Carries out everything the core asked for since its last input.
  void step(const std::string& id) {
    auto& n = at(id);
    for (int guard = 0; guard < 10000; ++guard) {
      check_invariants();
      auto out = n.core->take_ready();
      if (out.empty())
        return;
      for (auto& line : out.events)
        n.events.push_back(std::move(line));
      for (auto& message : out.messages)
        post(id, std::move(message));
      for (auto& answer : out.answers)
        n.answers.push_back(std::move(answer));
      for (auto& effect : out.effects) {
        if (effect.what == raft_effect::kind::reset_state_machine)
          n.applied.clear();
        n.effects.push_back(std::move(effect));
      }
      for (auto& work : out.apply)
        n.unapplied.push_back(std::move(work));
      if (out.persist) {
        BOOST_REQUIRE_MESSAGE(!n.in_flight, id << ": a second persist request while one is in "
                                                  "flight");
        n.persists.push_back(*out.persist);
        n.in_flight = std::move(out.persist);
      }
      if (out.flush_requested)
        n.core->flush();
      if (n.auto_persist && n.in_flight)
        finish_persist(n);
      if (n.auto_apply && !n.unapplied.empty())
        finish_apply(n);
    }
    BOOST_FAIL(id << " never stopped producing output");
  }

  /// Hands `message` to the core as if it had arrived, and carries out what follows.
  template <class Message>
  void handle(const std::string& id, Message message) {
    core(id).handle(message);
    step(id);
  }

  void tick(const std::string& id, int times = 1) {
    for (int i = 0; i < times; ++i) {
      core(id).tick();
      step(id);
    }
  }

  /// Ticks every node once and delivers until quiet, `times` times.
  void tick_all(int times = 1) {
    for (int i = 0; i < times; ++i) {
      for (auto& [id, n] : nodes_)
        tick(id);
      run();
    }
  }

  /// Storage makes the request in flight durable.
  void persist(const std::string& id) {
    auto& n = at(id);
    BOOST_REQUIRE_MESSAGE(n.in_flight, id << " has no persist request in flight");
    finish_persist(n);
    step(id);
  }

  /// The state machine applies every batch it was handed.
  void apply(const std::string& id) {
    finish_apply(at(id));
    step(id);
  }

  // -- messages ---------------------------------------------------------------------------------

  /// Copies of the queued messages of type T (any_message: all) from/to the given nodes.
  template <class T>
  std::vector<T> sent(const std::string& from = {}, const std::string& to = {}) const {
    std::vector<T> out;
    for (const auto& e : queue)
      if (matches<T>(e, from, to)) {
        if constexpr (std::is_same_v<T, any_message>)
          out.push_back(any_message{});
        else
          out.push_back(std::get<T>(e.rpc));
      }
    return out;
  }

  /// Copies of the delivered messages of type T from/to the given nodes.
  template <class T>
  std::vector<T> delivered(const std::string& from = {}, const std::string& to = {}) const {
    std::vector<T> out;
    for (const auto& e : history)
      if (matches<T>(e, from, to))
        out.push_back(std::get<T>(e.rpc));
    return out;
  }

  /// Removes the matching queued messages (lost on the way); returns how many.
  template <class T = any_message>
  size_t drop(const std::string& from = {}, const std::string& to = {}) {
    return take<T>(from, to).size();
  }

  /// Delivers the matching queued messages, in order (what they cause is queued behind).
  template <class T = any_message>
  size_t deliver(const std::string& from = {}, const std::string& to = {}) {
    auto taken = take<T>(from, to);
    for (auto& e : taken)
      deliver_envelope(e);
    return taken.size();
  }

  /// Delivers the oldest queued message; false if none.
  bool deliver_one() {
    if (queue.empty())
      return false;
    auto e = std::move(queue.front());
    queue.pop_front();
    deliver_envelope(e);
    return true;
  }

  /// Delivers until no message is left (messages to missing nodes are dropped).
  void run() {
    for (int guard = 0; guard < 100000; ++guard)
      if (!deliver_one())
        return;
    BOOST_FAIL("messages never stopped flowing");
  }

  /// Delivers one message at a time until `done()` holds (or nothing is left).
  void run_until(const std::function<bool()>& done) {
    for (int guard = 0; guard < 100000 && !done(); ++guard)
      if (!deliver_one())
        return;
  }

  /// Messages between `id` and anyone are lost from now on (connections stay up: a silent
  /// partition, not a closed one; use peer_down for that).
  void isolate(const std::string& id) {
    isolated_.insert(id);
    queue.erase(std::remove_if(queue.begin(), queue.end(),
                               [&](const envelope& e) { return !linked(e.from, e.to); }),
                queue.end());
  }
  void heal() { isolated_.clear(); }

  // -- whole-node scenarios ---------------------------------------------------------------------

  /// Ticks `id` until its election timeout fires (it becomes pre-candidate or candidate).
  void tick_until_campaign(const std::string& id) {
    auto& c = core(id);
    for (uint32_t i = 0; i < 2 * c.config().election_ticks && c.role() == raft_role::follower; ++i)
      tick(id);
    BOOST_REQUIRE_MESSAGE(c.role() != raft_role::follower, id << " did not campaign");
  }

  /// Ticks `id` until it campaigns, then delivers until quiet; it must have won.
  void elect(const std::string& id) {
    auto& c = core(id);
    tick_until_campaign(id);
    run();
    BOOST_REQUIRE_MESSAGE(c.role() == raft_role::leader, id << " did not win its election");
  }

  /// Makes `id` leader with the votes of imaginary peers (its peers are not in the network).
  void elect_alone(const std::string& id) {
    auto& c = core(id);
    tick_until_campaign(id);
    auto members = c.members();
    for (const auto& [member, address] : members)
      if (member != id && c.role() == raft_role::pre_candidate)
        handle(id, vote(member, c.term() + 1, true, true));
    for (const auto& [member, address] : members)
      if (member != id && c.role() == raft_role::candidate)
        handle(id, vote(member, c.term(), true));
    BOOST_REQUIRE_MESSAGE(c.role() == raft_role::leader, id << " did not win its election");
    // What it sent while campaigning is of no interest.
    queue.clear();
  }

  /// The node crashes (losing everything not durable) and starts again from its disk.
  void restart(const std::string& id) {
    auto& n = at(id);
    n.in_flight.reset();
    n.unapplied.clear();
    n.applied.clear();
    queue.erase(std::remove_if(queue.begin(), queue.end(),
                               [&](const envelope& e) { return e.to == id || e.from == id; }),
                queue.end());
    n.core = std::make_unique<raft_core>(n.config, n.disk, ++n.seed);
    step(id);
    for (auto& [other, o] : nodes_)
      if (other != id)
        connect(id, other);
  }

 private:
  std::map<std::string, node> nodes_;
  std::set<std::string> isolated_;

  static void check_invariants() {
    BOOST_REQUIRE_MESSAGE(first_invariant_violation().empty(), first_invariant_violation());
  }

  bool linked(const std::string& a, const std::string& b) const {
    return isolated_.count(a) == 0 && isolated_.count(b) == 0;
  }

  void connect(const std::string& a, const std::string& b) {
    core(a).peer_up(b);
    step(a);
    core(b).peer_up(a);
    step(b);
  }

  void post(const std::string& from, outbound_message message) {
    if (linked(from, message.to))
      queue.push_back(envelope{from, std::move(message.to), std::move(message.rpc)});
  }

  template <class T>
  static bool matches(const envelope& e, const std::string& from, const std::string& to) {
    if ((!from.empty() && e.from != from) || (!to.empty() && e.to != to))
      return false;
    if constexpr (std::is_same_v<T, any_message>)
      return true;
    else
      return std::holds_alternative<T>(e.rpc);
  }

  template <class T>
  std::vector<envelope> take(const std::string& from, const std::string& to) {
    std::vector<envelope> taken;
    std::deque<envelope> kept;
    for (auto& e : queue)
      (matches<T>(e, from, to) ? taken.emplace_back(std::move(e))
                               : kept.emplace_back(std::move(e)));
    queue = std::move(kept);
    return taken;
  }

  void deliver_envelope(envelope& e) {
    if (!has(e.to) || !linked(e.from, e.to))
      return;
    history.push_back(e);
    core(e.to).handle(std::move(e.rpc));
    step(e.to);
  }

  static void write(recovered_state& disk, const persist_request& request) {
    if (request.has_hard_state)
      disk.state = request.state;
    if (request.truncate_from > 0 && request.truncate_from <= disk.entries.size())
      disk.entries.resize(request.truncate_from - 1);
    for (const auto& entry : request.entries) {
      BOOST_REQUIRE_MESSAGE(entry.index == disk.entries.size() + 1,
                            "persist request " << request.seq << " writes index " << entry.index
                                               << " after " << disk.entries.size());
      disk.entries.push_back(entry);
    }
    if (!request.cluster_id.empty())
      disk.cluster_id = request.cluster_id;
  }

  static void finish_persist(node& n) {
    auto request = std::move(*n.in_flight);
    n.in_flight.reset();
    write(n.disk, request);
    n.core->persisted(request.seq);
  }

  static void finish_apply(node& n) {
    auto work = std::move(n.unapplied);
    n.unapplied.clear();
    for (auto& w : work) {
      applied_batch batch;
      batch.last_applied = w.batch.entries.back().index;
      for (const auto& entry : w.batch.entries) {
        n.applied.push_back(entry);
        if (entry.kind == entry_kind::command)
          batch.results.push_back(entry_result{entry.index, "applied " + entry.data});
      }
      n.core->applied(w.epoch, batch);
    }
  }
};

/// Resets the process-wide record of invariant violations before each test and checks it after.
struct core_fixture {
  core_fixture() { reset_invariant_violations(); }
  ~core_fixture() { BOOST_TEST(first_invariant_violation().empty(), first_invariant_violation()); }
};

} // namespace infinity::core_test
