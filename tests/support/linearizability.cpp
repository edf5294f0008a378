#include "tests/support/linearizability.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <sstream>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <utility>

namespace infinity::lin {

namespace {

// -- Model ----------------------------------------------------------------------------------------

// Register values are interned per key so a model state is one integer; this keeps memo entries
// small and comparisons cheap however long the values are.
constexpr int32_t absent = -1;
/// The value of a set that no read can return: any two such values are equally unobservable, so
/// sharing one id merges configurations that differ only in which of them was written last.
constexpr int32_t unread = -2;

struct prepared_op {
  const operation* src = nullptr;
  op_kind kind = op_kind::get;
  /// set: value written; get: value read (absent when not found); del: absent. For a write
  /// with a known outcome whose effect no read can return: `unread`.
  int32_t value = absent;
  /// `value` before that substitution, for explanations.
  int32_t real_value = absent;
  /// Outcome ok: has a return event and must be linearized. Otherwise it may never happen.
  bool finite = true;
  /// Unknown outcome only: when the last read that could observe this write completes.
  uint64_t horizon = 0;
};

bool apply(const prepared_op& op, int32_t state, int32_t& next) {
  switch (op.kind) {
  case op_kind::set:
  case op_kind::del: // absent, or unread for a delete no read can observe
    next = op.value;
    return true;
  case op_kind::get:
    next = state;
    return state == op.value;
  }
  return false;
}

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// Zobrist hashing: the hash of a linearized set is the XOR of per-op keys, so it updates in O(1)
// per step instead of rehashing the whole bitset.
uint64_t zobrist(uint32_t op) {
  return mix64(op);
}
uint64_t state_hash(int32_t state) {
  return mix64(static_cast<uint64_t>(static_cast<uint32_t>(state)) ^ 0x5bd1e9955bd1e995ULL);
}

// First clear bit at or after `from`. The bitset always has a spare zero word at the end.
uint32_t first_zero_from(const std::vector<uint64_t>& bits, uint32_t from) {
  size_t w = from / 64;
  uint64_t word = bits[w] | ((uint64_t{1} << (from % 64)) - 1);
  while (word == ~uint64_t{0})
    word = bits[++w];
  return static_cast<uint32_t>(w * 64 + static_cast<unsigned>(__builtin_ctzll(~word)));
}

// -- Memo table -----------------------------------------------------------------------------------

// Open-addressing table of configurations whose exploration finished without success.
//
// A configuration is (resolved ops, register value). Unknown-outcome deletes are all alike, and
// the search resolves them in index order (see `search`), so which of them are resolved is just
// a count; the key holds everything else and the entry the smallest count seen. A configuration
// with more deletes already used has fewer options than a failed one with fewer, so it fails too.
//
// The rest of the resolved set is stored in canonical compact form: `low` (every op below it is
// resolved) plus the bitset words from low/64 up to the highest resolved op. Ops are indexed by
// invocation order, so that range spans the concurrency window, not the whole history: memory
// per configuration stays small on long histories.
class memo_table {
 public:
  memo_table() : slots_(1024, 0) {}

  /// The smallest delete count recorded for this key, if any.
  std::optional<uint32_t> find(uint64_t hash, int32_t state, uint32_t low, const uint64_t* words,
                               uint32_t count) const {
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0)
        return std::nullopt;
      const entry& e = entries_[slot - 1];
      if (matches(e, hash, state, low, words, count))
        return e.deletes;
    }
  }

  void record(uint64_t hash, int32_t state, uint32_t low, const uint64_t* words, uint32_t count,
              uint32_t deletes) {
    if ((entries_.size() + 1) * 2 > slots_.size())
      grow();
    const size_t mask = slots_.size() - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
      const uint32_t slot = slots_[i];
      if (slot == 0) {
        entries_.push_back({hash, arena_.size(), low, count, state, deletes});
        arena_.insert(arena_.end(), words, words + count);
        slots_[i] = static_cast<uint32_t>(entries_.size());
        return;
      }
      entry& e = entries_[slot - 1];
      if (matches(e, hash, state, low, words, count)) {
        e.deletes = std::min(e.deletes, deletes);
        return;
      }
    }
  }

 private:
  struct entry {
    uint64_t hash;
    uint64_t offset;
    uint32_t low;
    uint32_t count;
    int32_t state;
    uint32_t deletes;
  };

  bool matches(const entry& e, uint64_t hash, int32_t state, uint32_t low, const uint64_t* words,
               uint32_t count) const {
    return e.hash == hash && e.state == state && e.low == low && e.count == count &&
           std::equal(words, words + count, arena_.begin() + static_cast<ptrdiff_t>(e.offset));
  }

  void grow() {
    std::vector<uint32_t> bigger(slots_.size() * 2, 0);
    const size_t mask = bigger.size() - 1;
    for (size_t k = 0; k < entries_.size(); ++k) {
      size_t i = entries_[k].hash & mask;
      while (bigger[i] != 0)
        i = (i + 1) & mask;
      bigger[i] = static_cast<uint32_t>(k + 1);
    }
    slots_.swap(bigger);
  }

  std::vector<entry> entries_;
  std::vector<uint64_t> arena_;
  std::vector<uint32_t> slots_;
};

// -- Search ---------------------------------------------------------------------------------------

enum class search_verdict { ok, violation, unknown };

// Where the search got stuck furthest, for truncation and for the explanation.
struct search_trace {
  bool record_order = false;
  bool blocked = false;
  /// Index (in event order) of the latest return event any search path failed to get past.
  uint32_t block_event = 0;
  uint32_t blocked_op = 0;
  /// Ops linearized, in order, when that return was first reached (only with record_order).
  std::vector<uint32_t> order;
  /// Distinct register values with which paths reached that return (a few).
  std::vector<int32_t> states;
  /// On violation: ops invoked before that return, ascending. No path gets past it, so these
  /// ops alone are already not linearizable.
  std::vector<uint32_t> before_block;
};

enum class event_kind : uint8_t {
  call = 0,
  /// An ok op's completion: it must be linearized by then.
  ret = 1,
  /// An unknown-outcome write's horizon: every read that could observe it has returned, so if
  /// it is still pending it may as well never happen. Sorts after returns at the same time.
  horizon = 2,
};

struct event {
  uint64_t time;
  uint32_t op;
  event_kind kind;
};

enum class step_kind : uint8_t {
  /// One of several alternatives; on backtrack, the next one is tried.
  choice,
  /// The only alternative worth trying; on backtrack, the configuration before it failed too.
  forced,
  /// Forced, for an unknown-outcome write left out at its horizon: it never took effect.
  dropped,
};

struct frame {
  uint32_t node;
  uint32_t op;
  int32_t state;
  uint32_t low;
  uint32_t high;
  step_kind kind;
  /// For a choice: its index among the configuration's candidates.
  uint32_t position;
  /// Where this step's absorbed writes start in the absorbed stack.
  uint32_t absorbed_from;
};

// Depth-first search for a linearization of one key's ops, sorted by invocation time. Besides
// Lowe's memo, a few rules prune branches that cannot matter; each keeps the search complete
// because from any configuration with a valid continuation, some continuation obeying the rule
// exists (argued at each rule). Writes the number of steps taken to `states`.
search_verdict search(const std::vector<prepared_op>& ops, uint64_t budget, uint64_t& states,
                      search_trace& trace) {
  const auto n = static_cast<uint32_t>(ops.size());
  std::vector<event> events;
  events.reserve(2 * ops.size());
  uint32_t finite_left = 0;
  // Unknown-outcome writes with the same effect are interchangeable; see `allowed` below.
  std::vector<int32_t> group_of(n, -1);
  std::map<std::pair<op_kind, int32_t>, int32_t> groups;
  for (uint32_t i = 0; i < n; ++i) {
    events.push_back({ops[i].src->invoke, i, event_kind::call});
    if (ops[i].finite) {
      events.push_back({ops[i].src->complete, i, event_kind::ret});
      ++finite_left;
    } else {
      events.push_back({ops[i].horizon, i, event_kind::horizon});
      group_of[i] = groups
                        .emplace(std::make_pair(ops[i].kind, ops[i].value),
                                 static_cast<int32_t>(groups.size()))
                        .first->second;
    }
  }
  // At equal times invocations go first: clocks cannot order such ops, so they are concurrent.
  std::sort(events.begin(), events.end(), [](const event& a, const event& b) {
    if (a.time != b.time)
      return a.time < b.time;
    if (a.kind != b.kind)
      return a.kind < b.kind;
    return a.op < b.op;
  });

  // Doubly linked list of events (node k+1 is event k; node 0 is the head sentinel). Resolving
  // an op unlinks its events; backtracking relinks them in reverse order (dancing links).
  const auto event_count = static_cast<uint32_t>(events.size());
  const uint32_t head = 0;
  std::vector<uint32_t> prev(event_count + 2), next(event_count + 2);
  for (uint32_t k = 0; k < event_count + 2; ++k) {
    prev[k] = k == 0 ? 0 : k - 1;
    next[k] = k + 1;
  }
  std::vector<uint32_t> call_node(n, 0), return_node(n, 0);
  for (uint32_t k = 0; k < event_count; ++k)
    (events[k].kind == event_kind::call ? call_node : return_node)[events[k].op] = k + 1;
  auto unlink = [&](uint32_t x) {
    next[prev[x]] = next[x];
    prev[next[x]] = prev[x];
  };
  auto relink = [&](uint32_t x) {
    next[prev[x]] = x;
    prev[next[x]] = x;
  };
  auto is_call = [&](uint32_t node) { return events[node - 1].kind == event_kind::call; };

  // Resolved ops (linearized or dropped) as a bitset, except unknown-outcome deletes: they are
  // interchangeable, resolved in index order, and so counted in `deletes`; their bits stay set.
  const auto delete_group = groups.find({op_kind::del, absent});
  std::vector<bool> counted(n, false);
  std::vector<uint64_t> bits(n / 64 + 2, 0);
  uint32_t low = 0;  // every op below is resolved (or counted)
  uint32_t high = 0; // no op at or above is resolved (counted ops aside: their bits are fixed)
  if (delete_group != groups.end()) {
    for (uint32_t i = 0; i < n; ++i) {
      if (group_of[i] == delete_group->second) {
        counted[i] = true;
        bits[i / 64] |= uint64_t{1} << (i % 64);
      }
    }
    low = first_zero_from(bits, 0);
  }
  uint32_t deletes = 0;
  uint64_t zob = 0;
  int32_t state = absent;
  memo_table memo;
  uint64_t explored = 0;
  std::vector<frame> stack;
  std::vector<uint32_t> absorbed; // ops resolved along with a write, see `push`
  auto memo_words = [&](uint32_t from, uint32_t to, uint32_t& count) {
    count = to > from ? (to - 1) / 64 - from / 64 + 1 : 0;
    return bits.data() + from / 64;
  };

  // Rule (unknown symmetry): among callable pending unknown writes with the same effect, only
  // the one whose horizon comes first is tried; a valid continuation using another one stays
  // valid with the two swapped, as the first one's window ends no later. Without this, k pending
  // timed-out deletes would multiply the configurations by 2^k instead of k+1.
  std::vector<uint32_t> group_best(groups.size(), 0), group_stamp(groups.size(), 0);
  uint32_t stamp = 0;
  auto earlier_horizon = [&](uint32_t a, uint32_t b) {
    return ops[a].horizon != ops[b].horizon ? ops[a].horizon < ops[b].horizon : a < b;
  };
  // Rule (unknown just in time): an unknown-outcome write is only tried right before a callable
  // read of its effect, which the matching-read rule then places next. In a valid continuation,
  // an unknown write followed by another write or by nothing can be left out (it may never have
  // happened), so some valid continuation has each unknown write immediately followed by a read
  // of its effect; one that would not change the value can be left out likewise. Without this,
  // every configuration would branch on "a timed-out delete happened here".
  int32_t value_count = 0;
  for (const prepared_op& op : ops)
    value_count = std::max(value_count, op.value + 1);
  // Indexed by value + 1, so absent is at 0.
  std::vector<uint32_t> read_stamp(static_cast<size_t>(value_count) + 1, 0);
  auto allowed = [&](uint32_t i) {
    if (group_of[i] < 0)
      return true;
    return group_best[static_cast<size_t>(group_of[i])] == i && ops[i].value != state &&
           read_stamp[static_cast<size_t>(ops[i].value) + 1] == stamp;
  };
  // Rule (blind writes): a write whose effect no read can return (`unread`) is never a choice of
  // its own. In a valid continuation it is immediately followed by a write (or is last), so it
  // can equally sit right before the first write placed once it is callable: every write placed
  // absorbs the callable pending blind writes. One still pending when its return is the first
  // pending return is forced in place, after any matching reads.
  std::vector<uint32_t> blind_callable;
  // Scans the callable ops (invoked before the first pending return or horizon), refreshing
  // `group_best`, `read_stamp` and `blind_callable`. Returns that first non-call node, and a
  // callable read matching the current value, if any.
  auto scan_callable = [&](uint32_t& matching_read) {
    ++stamp;
    matching_read = 0;
    blind_callable.clear();
    uint32_t x = next[head];
    for (; is_call(x); x = next[x]) {
      const uint32_t i = events[x - 1].op;
      const prepared_op& op = ops[i];
      if (op.kind == op_kind::get) {
        read_stamp[static_cast<size_t>(op.value) + 1] = stamp;
        if (matching_read == 0 && op.value == state)
          matching_read = x;
      } else if (op.value == unread) {
        blind_callable.push_back(i);
      }
      if (group_of[i] >= 0) {
        const auto g = static_cast<size_t>(group_of[i]);
        if (group_stamp[g] != stamp || earlier_horizon(i, group_best[g])) {
          group_stamp[g] = stamp;
          group_best[g] = i;
        }
      }
    }
    return x;
  };

  auto mark = [&](uint32_t i, uint32_t& next_low, uint32_t& next_high, uint64_t& next_zob,
                  uint32_t& next_deletes) {
    if (counted[i]) {
      ++next_deletes;
      return;
    }
    bits[i / 64] |= uint64_t{1} << (i % 64);
    next_zob ^= zobrist(i);
    next_high = std::max(next_high, i + 1);
    if (i == next_low)
      next_low = first_zero_from(bits, next_low);
  };
  auto unmark = [&](uint32_t i) {
    if (!counted[i])
      bits[i / 64] &= ~(uint64_t{1} << (i % 64));
  };
  auto resolve = [&](uint32_t i) {
    unlink(call_node[i]);
    unlink(return_node[i]);
    if (ops[i].finite)
      --finite_left;
  };
  auto unresolve = [&](uint32_t i) {
    relink(return_node[i]);
    relink(call_node[i]);
    if (ops[i].finite)
      ++finite_left;
  };

  // Resolves the op whose call event is `node`: applies it, or for `dropped` leaves the state
  // alone; a write also absorbs the callable blind writes (`scan_callable` must describe the
  // current configuration). Returns false if the model rejects it, if the resulting
  // configuration is known to fail, or if the budget ran out. Configurations on the current
  // path are never revisited (the resolved set only grows), so the memo holds finished ones.
  bool out_of_budget = false;
  auto push = [&](uint32_t node, step_kind kind, uint32_t position) {
    const uint32_t i = events[node - 1].op;
    int32_t next_state = state;
    if (kind != step_kind::dropped && !apply(ops[i], state, next_state))
      return false;
    uint32_t next_low = low, next_high = high, next_deletes = deletes;
    uint64_t next_zob = zob;
    const auto absorbed_from = static_cast<uint32_t>(absorbed.size());
    mark(i, next_low, next_high, next_zob, next_deletes);
    if (kind != step_kind::dropped && ops[i].kind != op_kind::get) {
      for (uint32_t b : blind_callable) {
        if (b != i) {
          absorbed.push_back(b);
          mark(b, next_low, next_high, next_zob, next_deletes);
        }
      }
    }
    auto undo_marks = [&] {
      unmark(i);
      for (size_t k = absorbed_from; k < absorbed.size(); ++k)
        unmark(absorbed[k]);
      absorbed.resize(absorbed_from);
    };
    uint32_t count = 0;
    const uint64_t* words = memo_words(next_low, next_high, count);
    const auto failed_with =
        memo.find(next_zob ^ state_hash(next_state), next_state, next_low, words, count);
    if (failed_with && *failed_with <= next_deletes) {
      undo_marks();
      return false;
    }
    if (++explored > budget) {
      out_of_budget = true;
      return false;
    }
    stack.push_back({node, i, state, low, high, kind, position, absorbed_from});
    resolve(i);
    for (size_t k = absorbed_from; k < absorbed.size(); ++k)
      resolve(absorbed[k]);
    state = next_state;
    low = next_low;
    high = next_high;
    zob = next_zob;
    deletes = next_deletes;
    return true;
  };
  // Undoes the last step; the configuration it led to has failed.
  auto pop = [&] {
    uint32_t count = 0;
    const uint64_t* words = memo_words(low, high, count);
    memo.record(zob ^ state_hash(state), state, low, words, count, deletes);
    const frame f = stack.back();
    stack.pop_back();
    for (size_t k = absorbed.size(); k-- > f.absorbed_from;) {
      unresolve(absorbed[k]);
      unmark(absorbed[k]);
      if (counted[absorbed[k]])
        --deletes;
      else
        zob ^= zobrist(absorbed[k]);
    }
    absorbed.resize(f.absorbed_from);
    unresolve(f.op);
    unmark(f.op);
    if (counted[f.op])
      --deletes;
    else
      zob ^= zobrist(f.op);
    state = f.state;
    low = f.low;
    high = f.high;
    return f;
  };

  // Candidates for the next step in a configuration, in the order tried: by the midpoint of
  // their interval (a cheap guess at the real order), unknown-outcome writes last so that
  // configurations using fewer deletes finish first and the delete count prunes the others.
  // Reads never appear (one matching the value is forced, others fail), nor do blind writes.
  // The order depends only on the configuration, so backtracking rebuilds the same list.
  std::vector<uint32_t> candidates;
  auto build_candidates = [&] {
    candidates.clear();
    for (uint32_t x = next[head]; is_call(x); x = next[x]) {
      const uint32_t i = events[x - 1].op;
      if (ops[i].kind != op_kind::get && ops[i].value != unread && allowed(i))
        candidates.push_back(x);
    }
    auto rank = [&](uint32_t x) {
      const uint32_t i = events[x - 1].op;
      const operation& op = *ops[i].src;
      const uint64_t mid = op.invoke / 2 + op.complete / 2 + (op.invoke % 2 + op.complete % 2) / 2;
      return std::make_tuple(!ops[i].finite, ops[i].finite ? mid : ops[i].horizon, i);
    };
    std::sort(candidates.begin(), candidates.end(),
              [&](uint32_t a, uint32_t b) { return rank(a) < rank(b); });
  };

  trace.blocked = false;
  trace.order.clear();
  trace.states.clear();
  trace.before_block.clear();

  uint32_t end = 0;    // first non-call node of the current configuration
  size_t next_pos = 0; // next candidate to try in the current configuration
  bool fresh = true;   // at a configuration not scanned yet
  for (;;) {
    // Unknown-outcome ops still pending may simply never have happened.
    if (finite_left == 0) {
      states = explored;
      return search_verdict::ok;
    }
    bool dead = false;
    if (fresh) {
      fresh = false;
      uint32_t read = 0;
      // Not the tail: the returns of the pending finite ops are still linked.
      end = scan_callable(read);
      const event& first = events[end - 1];
      if (first.kind == event_kind::horizon) {
        fresh = push(call_node[first.op], step_kind::dropped, 0);
        dead = !fresh;
      } else if (read != 0) {
        // Rule (matching reads): a callable read that matches the current value can go first:
        // moved to the front of a valid continuation, it changes nothing, and everything that
        // had to precede it is already linearized. So it is the only branch to try.
        fresh = push(read, step_kind::forced, 0);
        dead = !fresh;
      } else if (ops[first.op].value == unread) {
        fresh = push(call_node[first.op], step_kind::forced, 0);
        dead = !fresh;
      } else {
        build_candidates();
        next_pos = 0;
      }
      if (fresh)
        continue;
      if (out_of_budget) {
        states = explored;
        return search_verdict::unknown;
      }
    }

    if (!dead) {
      if (next_pos < candidates.size()) {
        const size_t pos = next_pos++;
        if (push(candidates[pos], step_kind::choice, static_cast<uint32_t>(pos))) {
          fresh = true;
        } else if (out_of_budget) {
          states = explored;
          return search_verdict::unknown;
        }
        continue;
      }
      // A return with its op still pending: this path is stuck.
      const uint32_t k = end - 1;
      if (!trace.blocked || k > trace.block_event) {
        trace.blocked = true;
        trace.block_event = k;
        trace.blocked_op = events[k].op;
        trace.states.assign(1, state);
        if (trace.record_order) {
          trace.order.clear();
          for (const frame& f : stack) {
            if (f.kind == step_kind::dropped)
              continue;
            const size_t until = &f == &stack.back() ? absorbed.size() : (&f + 1)->absorbed_from;
            for (size_t a = f.absorbed_from; a < until; ++a)
              trace.order.push_back(absorbed[a]);
            trace.order.push_back(f.op);
          }
        }
      } else if (k == trace.block_event && trace.states.size() < 8 &&
                 std::find(trace.states.begin(), trace.states.end(), state) == trace.states.end()) {
        trace.states.push_back(state);
      }
    }

    // Backtrack to the latest choice that has alternatives left.
    frame f{};
    do {
      if (stack.empty()) {
        for (uint32_t j = 0; j < trace.block_event; ++j)
          if (events[j].kind == event_kind::call)
            trace.before_block.push_back(events[j].op);
        std::sort(trace.before_block.begin(), trace.before_block.end());
        states = explored;
        return search_verdict::violation;
      }
      f = pop();
    } while (f.kind != step_kind::choice);
    uint32_t unused = 0;
    end = scan_callable(unused);
    build_candidates();
    next_pos = f.position + 1;
  }
}

// -- Per-key preparation --------------------------------------------------------------------------

struct key_history {
  std::string_view key;
  /// Sorted by invocation time.
  std::vector<prepared_op> ops;
  /// Interned value id -> value.
  std::vector<std::string_view> values;
  /// Failed writes, kept only to explain reads of a value nobody else wrote.
  std::vector<const operation*> failed_writes;
  /// Ops on the key in the history, and how many of them the search ignores (failed ones, and
  /// unknown-outcome ones no read can observe).
  size_t total = 0;
  size_t dropped = 0;
};

key_history prepare(std::string_view key, const std::vector<const operation*>& raw) {
  key_history h;
  h.key = key;
  h.total = raw.size();
  // An unknown-outcome write matters only to reads that return its effect and complete after it
  // was invoked: dropping it from a valid order whose remaining reads all see other values keeps
  // the order valid (only writes or nothing can follow it). So it is left out when no such read
  // exists, and otherwise may be dropped once the last of them has completed (its horizon).
  // This removes most of the concurrency that timeouts would otherwise add to the search.
  std::unordered_map<std::string_view, uint64_t> last_read;
  std::optional<uint64_t> last_absent_read;
  for (const operation* op : raw) {
    if (op->kind != op_kind::get || op->outcome != outcome::ok)
      continue;
    if (op->found) {
      auto [it, inserted] = last_read.emplace(op->value, op->complete);
      if (!inserted)
        it->second = std::max(it->second, op->complete);
    } else {
      last_absent_read = std::max(last_absent_read.value_or(0), op->complete);
    }
  }
  auto horizon = [&](const operation& op) -> std::optional<uint64_t> {
    std::optional<uint64_t> last;
    if (op.kind == op_kind::del) {
      last = last_absent_read;
    } else if (op.kind == op_kind::set) {
      if (auto it = last_read.find(op.value); it != last_read.end())
        last = it->second;
    }
    if (last && *last >= op.invoke)
      return last;
    return std::nullopt;
  };
  std::unordered_map<std::string_view, int32_t> ids;
  auto intern = [&](std::string_view v) {
    auto [it, inserted] = ids.emplace(v, static_cast<int32_t>(h.values.size()));
    if (inserted)
      h.values.push_back(v);
    return it->second;
  };
  std::vector<const operation*> kept;
  for (const operation* op : raw) {
    if (op->outcome == outcome::failed) {
      if (op->kind != op_kind::get)
        h.failed_writes.push_back(op);
      ++h.dropped;
      continue;
    }
    if (op->outcome == outcome::unknown && !horizon(*op)) {
      ++h.dropped;
      continue;
    }
    kept.push_back(op);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [](const operation* a, const operation* b) { return a->invoke < b->invoke; });
  for (const operation* op : kept) {
    prepared_op p;
    p.src = op;
    p.kind = op->kind;
    p.finite = op->outcome == outcome::ok;
    if (!p.finite)
      p.horizon = *horizon(*op);
    if (op->kind == op_kind::set || (op->kind == op_kind::get && op->found))
      p.value = intern(op->value);
    p.real_value = p.value;
    if (op->kind != op_kind::get && p.finite && !horizon(*op))
      p.value = unread;
    h.ops.push_back(p);
  }
  return h;
}

// A read of a value that no write invoked before the read completed could have produced. The
// search would find it too, but only after exhausting every order before that read, which on a
// busy key can exceed the budget; this catches the common case (e.g. an observed failed write)
// in linear time.
std::optional<uint32_t> find_unwritten_read(const key_history& h) {
  std::vector<uint64_t> first_write(h.values.size(), std::numeric_limits<uint64_t>::max());
  for (const prepared_op& op : h.ops)
    if (op.kind == op_kind::set && op.value >= 0)
      first_write[static_cast<size_t>(op.value)] =
          std::min(first_write[static_cast<size_t>(op.value)], op.src->invoke);
  std::optional<uint32_t> best;
  for (uint32_t i = 0; i < h.ops.size(); ++i) {
    const prepared_op& op = h.ops[i];
    if (op.kind != op_kind::get || op.value == absent || !op.finite)
      continue;
    if (first_write[static_cast<size_t>(op.value)] > op.src->complete &&
        (!best || op.src->complete < h.ops[*best].src->complete))
      best = i;
  }
  return best;
}

// The most ops with a known outcome in flight at one time: what makes a key expensive to check.
size_t max_concurrency(const key_history& h) {
  std::vector<std::pair<uint64_t, int>> edges; // (time, +1 invoke / -1 complete)
  for (const prepared_op& op : h.ops) {
    if (op.finite) {
      edges.emplace_back(op.src->invoke, 1);
      edges.emplace_back(op.src->complete, -1);
    }
  }
  // Invocations first at equal times, as in the search.
  std::sort(edges.begin(), edges.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second > b.second;
  });
  size_t now = 0, most = 0;
  for (const auto& [time, delta] : edges) {
    now = delta > 0 ? now + 1 : now - 1;
    most = std::max(most, now);
  }
  return most;
}

// -- Reduction ------------------------------------------------------------------------------------

// Shrinks a violating set of ops (indices into the key's ops) by delta debugging: drop chunks of
// halving size, keeping any removal after which the rest still violates. Writes that are the
// only possible source of a kept read's value stay, so the reported set does not suggest a read
// of a never-written value when the history had the write.
class reducer {
 public:
  reducer(const std::vector<prepared_op>& ops, uint64_t budget, uint64_t effort)
      : ops_(ops), budget_(budget), effort_left_(effort) {}

  bool violates(const std::vector<uint32_t>& subset) {
    if (effort_left_ == 0) {
      exhausted_ = true;
      return false;
    }
    std::vector<prepared_op> sub;
    sub.reserve(subset.size());
    for (uint32_t i : subset)
      sub.push_back(ops_[i]);
    uint64_t states = 0;
    search_trace trace;
    const auto v = search(sub, std::min(budget_, effort_left_), states, trace);
    const uint64_t cost = states + subset.size();
    effort_left_ = cost >= effort_left_ ? 0 : effort_left_ - cost;
    if (v == search_verdict::unknown && effort_left_ == 0)
      exhausted_ = true;
    return v == search_verdict::violation;
  }

  std::vector<uint32_t> run(std::vector<uint32_t> cur) {
    size_t chunk = std::max<size_t>(1, cur.size() / 2);
    for (;;) {
      bool removed_any = false;
      for (size_t i = 0; i < cur.size() && !exhausted_;) {
        const size_t end = std::min(cur.size(), i + chunk);
        std::vector<uint32_t> candidate(cur.begin(), cur.begin() + static_cast<ptrdiff_t>(i));
        candidate.insert(candidate.end(), cur.begin() + static_cast<ptrdiff_t>(end), cur.end());
        std::vector<uint32_t> removed(cur.begin() + static_cast<ptrdiff_t>(i),
                                      cur.begin() + static_cast<ptrdiff_t>(end));
        protect(candidate, removed);
        if (candidate.size() < cur.size() && violates(candidate)) {
          cur = std::move(candidate);
          removed_any = true;
        } else {
          i += chunk;
        }
      }
      if (exhausted_)
        break;
      if (chunk == 1) {
        if (!removed_any)
          break;
      } else {
        chunk /= 2;
      }
    }
    return cur;
  }

  bool exhausted() const { return exhausted_; }

  /// Adds back to `kept` (ascending) the latest op of `removed` (ascending) that could have
  /// written what a kept read returned, for each read none of `kept` explains.
  void protect(std::vector<uint32_t>& kept, const std::vector<uint32_t>& removed) {
    std::vector<uint32_t> back;
    for (uint32_t g : kept) {
      const prepared_op& get = ops_[g];
      if (get.kind != op_kind::get || !get.finite)
        continue;
      auto explains = [&](uint32_t w) {
        const prepared_op& op = ops_[w];
        const bool writes = get.value == absent ? op.kind == op_kind::del
                                                : op.kind == op_kind::set && op.value == get.value;
        return writes && op.src->invoke <= get.src->complete;
      };
      if (std::any_of(kept.begin(), kept.end(), explains) ||
          std::any_of(back.begin(), back.end(), explains))
        continue;
      // The latest candidate is the likeliest real source.
      for (auto it = removed.rbegin(); it != removed.rend(); ++it) {
        if (explains(*it)) {
          back.push_back(*it);
          break;
        }
      }
    }
    if (back.empty())
      return;
    kept.insert(kept.end(), back.begin(), back.end());
    std::sort(kept.begin(), kept.end());
    kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
  }

 private:
  const std::vector<prepared_op>& ops_;
  uint64_t budget_;
  uint64_t effort_left_;
  bool exhausted_ = false;
};

// -- Messages -------------------------------------------------------------------------------------

std::string quote(std::string_view s) {
  constexpr size_t max_shown = 48;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < max_shown; ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  out += '"';
  if (s.size() > max_shown)
    out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

std::string describe(const operation& op) {
  std::string out = to_string(op.kind);
  out += ' ';
  out += quote(op.key);
  switch (op.kind) {
  case op_kind::set:
    out += " = " + quote(op.value);
    break;
  case op_kind::del:
    break;
  case op_kind::get:
    out += " -> " + (op.found ? quote(op.value) : std::string("absent"));
    break;
  }
  return out;
}

std::string interval(const operation& op) {
  std::string out = "[" + std::to_string(op.invoke) + ", ";
  out += op.outcome != outcome::unknown ? std::to_string(op.complete) + "]" : std::string("?)");
  return out;
}

std::string state_name(const key_history& h, int32_t state) {
  if (state == unread)
    return "a value no read returns";
  return state == absent ? std::string("absent") : quote(h.values[static_cast<size_t>(state)]);
}

void append_op_lines(std::ostringstream& out, const std::vector<const operation*>& ops) {
  constexpr size_t max_lines = 40;
  for (size_t i = 0; i < ops.size() && i < max_lines; ++i) {
    const operation& op = *ops[i];
    out << "  #" << op.id << "  client " << op.client << "  " << describe(op) << "  "
        << to_string(op.outcome) << "  " << interval(op) << '\n';
  }
  if (ops.size() > max_lines)
    out << "  ... and " << ops.size() - max_lines << " more\n";
}

// Builds the result for a violating key: shrinks it, then explains the smallest set found.
void report_violation(const key_history& h, const search_trace& main_trace,
                      const check_options& opts, uint64_t budget, check_result& result) {
  std::ostringstream out;
  if (auto unwritten = find_unwritten_read(h)) {
    const operation& get = *h.ops[*unwritten].src;
    result.conflicting = {get};
    out << "linearizability violation on key " << quote(h.key) << ": a read of a value that was "
        << "never written\n";
    append_op_lines(out, {&get});
    out << "#" << get.id << " read " << quote(get.value) << " but no operation that may have "
        << "taken effect by t=" << get.complete << " wrote it.\n";
    std::vector<const operation*> others;
    for (const operation* op : h.failed_writes)
      if (op->kind == op_kind::set && op->value == get.value)
        others.push_back(op);
    if (!others.empty()) {
      out << "Failed operations (which must not take effect) wrote it:\n";
      append_op_lines(out, others);
    }
    others.clear();
    for (const prepared_op& op : h.ops)
      if (op.kind == op_kind::set && op.src->value == get.value)
        others.push_back(op.src);
    if (!others.empty()) {
      out << "Writes of it invoked only after the read completed:\n";
      append_op_lines(out, others);
    }
    result.explanation = out.str();
    return;
  }

  reducer shrink(h.ops, budget, opts.max_reduction_effort);
  // The ops invoked before the furthest return no path got past. Their reads' writers are
  // added back when invoked later (they cannot help get past that return, so the set still
  // violates), or the reduction could settle on a read that only lacks its writer.
  std::vector<uint32_t> start = main_trace.before_block;
  {
    std::vector<uint32_t> rest;
    for (uint32_t i = 0, k = 0; i < h.ops.size(); ++i) {
      if (k < start.size() && start[k] == i)
        ++k;
      else
        rest.push_back(i);
    }
    shrink.protect(start, rest);
  }
  if (!shrink.violates(start)) {
    // Cannot happen if the truncation argument holds; fall back to the whole key rather than
    // report a set that is not a violation.
    start.clear();
    for (uint32_t i = 0; i < h.ops.size(); ++i)
      start.push_back(i);
  }
  const std::vector<uint32_t> reduced = shrink.run(start);

  std::vector<prepared_op> sub;
  std::vector<const operation*> shown;
  for (uint32_t i : reduced) {
    // Real values, so the explanation names what the key held; blind writes are only a
    // shortcut for the search.
    sub.push_back(h.ops[i]);
    sub.back().value = sub.back().real_value;
    shown.push_back(h.ops[i].src);
    result.conflicting.push_back(*h.ops[i].src);
  }
  search_trace trace;
  trace.record_order = true;
  uint64_t states = 0;
  const auto v = search(sub, budget, states, trace);

  out << "linearizability violation on key " << quote(h.key) << ": these " << reduced.size()
      << " operations cannot be linearized together (reduced from the key's " << h.total
      << " operations";
  if (h.dropped != 0)
    out << ", " << h.dropped << " of which failed or could not be observed";
  if (shrink.exhausted())
    out << "; reduction budget ran out, the set may not be minimal";
  out << "):\n";
  append_op_lines(out, shown);
  if (v != search_verdict::violation || !trace.blocked) {
    out << "(the reduced set could not be re-checked within the budget)\n";
    result.explanation = out.str();
    return;
  }
  const operation& stuck = *sub[trace.blocked_op].src;
  std::string held;
  for (size_t i = 0; i < trace.states.size(); ++i) {
    const int32_t s = trace.states[i];
    held +=
        (i == 0 ? "" : " or ") + (s == absent ? "" : std::string("holding ")) + state_name(h, s);
  }
  out << "#" << stuck.id << " (" << describe(stuck) << ") must take effect within "
      << interval(stuck) << ", but every real-time-consistent order of the operations above "
      << "that gets that far leaves the key " << held << " at that point";
  if (stuck.kind == op_kind::get)
    out << ", so the read cannot have returned " << (stuck.found ? quote(stuck.value) : "absent");
  out << ".\nFurthest order reached:";
  if (trace.order.empty())
    out << " (none)";
  for (size_t i = 0; i < trace.order.size(); ++i)
    out << (i == 0 ? " " : ", ") << "#" << sub[trace.order[i]].src->id << " "
        << describe(*sub[trace.order[i]].src);
  out << "\n";
  result.explanation = out.str();
}

} // namespace

// -- Public API -----------------------------------------------------------------------------------

check_result check(const std::vector<operation>& history, const check_options& opts) {
  // Events are indexed with 32 bits, two per operation.
  if (history.size() >= std::numeric_limits<uint32_t>::max() / 2)
    throw std::invalid_argument("linearizability check: history too large");
  std::map<std::string_view, std::vector<const operation*>> by_key;
  for (const operation& op : history) {
    if (op.outcome == outcome::ok && op.complete < op.invoke)
      throw std::invalid_argument("linearizability check: operation " + to_string(op) +
                                  " completes before it is invoked");
    by_key[op.key].push_back(&op);
  }
  // The memo table indexes entries with 32 bits.
  const uint64_t budget =
      std::min<uint64_t>(opts.max_states_per_key, std::numeric_limits<int32_t>::max());

  check_result result;
  std::ostringstream unknown_notes;
  for (const auto& [key, raw] : by_key) {
    const key_history h = prepare(key, raw);
    search_trace trace;
    search_verdict v = search_verdict::violation;
    if (!find_unwritten_read(h)) {
      uint64_t states = 0;
      v = search(h.ops, budget, states, trace);
      result.states_explored += states;
    }
    if (v == search_verdict::violation) {
      result.violating_keys.emplace_back(key);
      if (result.verdict != verdict::violation) {
        result.verdict = verdict::violation;
        result.key = std::string(key);
        report_violation(h, trace, opts, budget, result);
      }
    } else if (v == search_verdict::unknown) {
      result.unknown_keys.emplace_back(key);
      size_t unknown_ops = 0;
      for (const prepared_op& op : h.ops)
        unknown_ops += op.finite ? 0 : 1;
      unknown_notes << "key " << quote(key) << ": search budget of " << budget
                    << " states exhausted over " << h.ops.size() << " operations (" << unknown_ops
                    << " with unknown outcome, up to " << max_concurrency(h)
                    << " with a known one in flight at once)\n";
    }
  }

  if (result.verdict == verdict::violation) {
    if (result.violating_keys.size() > 1) {
      result.explanation += "Other violating keys:";
      for (size_t i = 1; i < result.violating_keys.size(); ++i)
        result.explanation += " " + quote(result.violating_keys[i]);
      result.explanation += "\n";
    }
    if (!result.unknown_keys.empty())
      result.explanation += "Also undecided within the budget:\n" + unknown_notes.str();
  } else if (!result.unknown_keys.empty()) {
    result.verdict = verdict::unknown;
    result.key = result.unknown_keys.front();
    result.explanation = "linearizability undecided (raise check_options::max_states_per_key "
                         "or check shorter histories):\n" +
                         unknown_notes.str();
  } else {
    result.explanation = "linearizable: " + std::to_string(history.size()) + " operations on " +
                         std::to_string(by_key.size()) + " keys\n";
  }
  return result;
}

operation make_set(std::string key, std::string value, uint64_t invoke, uint64_t complete,
                   outcome result, uint64_t client, uint64_t id) {
  operation op;
  op.kind = op_kind::set;
  op.key = std::move(key);
  op.value = std::move(value);
  op.invoke = invoke;
  op.complete = complete;
  op.outcome = result;
  op.client = client;
  op.id = id;
  return op;
}

operation make_del(std::string key, uint64_t invoke, uint64_t complete, outcome result,
                   uint64_t client, uint64_t id) {
  operation op;
  op.kind = op_kind::del;
  op.key = std::move(key);
  op.invoke = invoke;
  op.complete = complete;
  op.outcome = result;
  op.client = client;
  op.id = id;
  return op;
}

operation make_get(std::string key, std::optional<std::string> read, uint64_t invoke,
                   uint64_t complete, outcome result, uint64_t client, uint64_t id) {
  operation op;
  op.kind = op_kind::get;
  op.key = std::move(key);
  op.found = read.has_value();
  if (read)
    op.value = std::move(*read);
  op.invoke = invoke;
  op.complete = complete;
  op.outcome = result;
  op.client = client;
  op.id = id;
  return op;
}

const char* to_string(op_kind kind) {
  switch (kind) {
  case op_kind::set:
    return "set";
  case op_kind::del:
    return "del";
  case op_kind::get:
    return "get";
  }
  return "?";
}

const char* to_string(outcome result) {
  switch (result) {
  case outcome::ok:
    return "ok";
  case outcome::failed:
    return "failed";
  case outcome::unknown:
    return "unknown";
  }
  return "?";
}

const char* to_string(verdict v) {
  switch (v) {
  case verdict::ok:
    return "ok";
  case verdict::violation:
    return "violation";
  case verdict::unknown:
    return "unknown";
  }
  return "?";
}

std::string to_string(const operation& op) {
  return "#" + std::to_string(op.id) + " client " + std::to_string(op.client) + ": " +
         describe(op) + " " + interval(op) + " " + to_string(op.outcome);
}

std::ostream& operator<<(std::ostream& out, verdict v) {
  return out << to_string(v);
}

std::ostream& operator<<(std::ostream& out, const operation& op) {
  return out << to_string(op);
}

} // namespace infinity::lin
