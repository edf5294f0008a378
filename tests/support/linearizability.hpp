// Linearizability checker for key-value histories recorded by tests.
//
// Each key is an independent register (linearizability is compositional, so checking keys apart
// is exact and keeps the search small). Per key, the checker runs the Wing & Gong depth-first
// search with Lowe's memoization, in the form Porcupine uses: walk the time-ordered list of
// invocation/return events, linearize any operation invoked before the earliest pending return,
// remember every (set of linearized operations, register value) already explored, and backtrack
// when a return is reached with its operation still pending.
//
// Operations whose outcome is unknown (timeout, reset connection, 5xx) may take effect at any
// point after their invocation or never: they get no return event, and a key is accepted once
// every operation with a known outcome is linearized.
//
// The search also skips branches that cannot change the verdict: a read matching the current
// value is placed at once; a write nobody can observe is placed only right before another
// write; an unknown-outcome write only right before a read of its effect; interchangeable
// timed-out deletes are counted rather than enumerated. These keep long histories with
// timeouts tractable; the cost still grows quickly with the number of operations concurrent on
// one key (a few tens is the practical limit), and is bounded by
// `check_options::max_states_per_key`: running out yields `verdict::unknown`, never a hang.
// Writing distinct values (e.g. the client id and a sequence number) keeps reads informative
// and the search small.
//
// Plain C++17 on purpose: used by simulation tests and by fault-injection tests that drive real
// processes over HTTP, neither of which should need CAF or Boost to record a history.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

namespace infinity::lin {

enum class op_kind : uint8_t { set, del, get };

enum class outcome : uint8_t {
  /// The client saw a definite success (for a get: the value it returned).
  ok,
  /// Definitely did not take effect (e.g. rejected before reaching the log): ignored.
  failed,
  /// Might have taken effect at any time after `invoke`, or never (timeout, reset, 5xx).
  unknown,
};

struct operation {
  op_kind kind = op_kind::get;
  std::string key;
  /// For set: the value written. For get with `found`: the value read. Otherwise ignored.
  std::string value;
  /// For get only: whether the key existed.
  bool found = false;
  /// Any monotonic clock shared by all clients. Operations touching at an endpoint
  /// (one's `complete` == another's `invoke`) are treated as concurrent.
  uint64_t invoke = 0;
  /// Must be >= `invoke` when `outcome` is ok. Ignored when unknown; for failed, only shown.
  uint64_t complete = 0;
  lin::outcome outcome = lin::outcome::ok;
  uint64_t client = 0;
  /// Only used to name the operation in messages.
  uint64_t id = 0;
};

enum class verdict : uint8_t { ok, violation, unknown };

struct check_options {
  /// Search steps (each entering a new configuration: linearized set and register value) the
  /// check of one key may take before giving up with `verdict::unknown`. Time is roughly linear
  /// in it (a microsecond or two per step), memory at most ~40 bytes plus the concurrency
  /// window / 8 per step: the default stays within a few seconds and tens of megabytes.
  uint64_t max_states_per_key = 1'000'000;
  /// Work (states visited plus operations re-indexed) spent shrinking a violating key's history
  /// to a small conflicting set. When it runs out, the partially reduced set is reported.
  uint64_t max_reduction_effort = 4'000'000;
};

struct check_result {
  lin::verdict verdict = lin::verdict::ok;
  /// The first violating key (in key order), else the first key whose budget ran out.
  std::string key;
  /// For a violation: a small set of operations on `key` that cannot be linearized together.
  std::vector<operation> conflicting;
  /// Human-readable, multi-line: the conflicting operations with their times and why they fail.
  std::string explanation;
  /// Search steps of the main search, summed over keys (reduction work is not counted).
  uint64_t states_explored = 0;
  /// Every violating key and every key whose budget ran out, in key order.
  std::vector<std::string> violating_keys;
  std::vector<std::string> unknown_keys;
};

/// Checks `history` (operations in any order, on any number of keys) for linearizability.
/// Throws std::invalid_argument if an ok operation completes before it was invoked.
check_result check(const std::vector<operation>& history, const check_options& opts = {});

// -- Conveniences for building histories ---------------------------------------------------------

operation make_set(std::string key, std::string value, uint64_t invoke, uint64_t complete,
                   outcome result = outcome::ok, uint64_t client = 0, uint64_t id = 0);
operation make_del(std::string key, uint64_t invoke, uint64_t complete,
                   outcome result = outcome::ok, uint64_t client = 0, uint64_t id = 0);
/// `read` is the value the get returned, or nullopt when the key was absent.
operation make_get(std::string key, std::optional<std::string> read, uint64_t invoke,
                   uint64_t complete, outcome result = outcome::ok, uint64_t client = 0,
                   uint64_t id = 0);

const char* to_string(op_kind kind);
const char* to_string(outcome result);
const char* to_string(verdict v);
/// One line, e.g. `#7 client 2: get "x" -> "1" [40, 55] ok`.
std::string to_string(const operation& op);

std::ostream& operator<<(std::ostream& out, verdict v);
std::ostream& operator<<(std::ostream& out, const operation& op);

} // namespace infinity::lin
