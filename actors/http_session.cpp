#include "actors/http_session.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "actors/kv/command_codec.hpp"
#include "actors/messages.hpp"

namespace infinity {
namespace {

using session_alarm_atom = caf::atom_constant<caf::atom("salarm")>;

struct pending_call {
  caf::actor_clock::time_point deadline;
  caf::timespan timeout;
  bool write = false;
  /// The answer when the deadline passes first: given "no answer within N ms".
  std::function<http::api_response(const std::string&)> timed_out;
};

struct http_session_state {
  http_session_config config;
  response_sink sink;
  /// Position of the next request to arrive, and of the next response the sink gets.
  uint64_t next_request = 0;
  uint64_t next_response = 0;
  /// Responses that are ready but wait for an earlier one (pipelining order).
  std::map<uint64_t, http::api_response> ready;
  /// Per-session command sequence for (client_id, sequence) deduplication; starts at 1.
  uint64_t last_command_sequence = 0;
  /// Reads and writes started and not yet answered. At most one of them is nonzero.
  size_t reads_in_flight = 0;
  size_t writes_in_flight = 0;
  /// Reads and writes that must wait for earlier ones of the other kind, in arrival order.
  std::deque<std::pair<uint64_t, http::api_request>> waiting;
  /// Writes and read barriers waiting for the Raft node, by position. They are sent without a
  /// CAF timeout: each of those costs two trips through CAF's clock thread (arm, cancel), about
  /// a sixth of a node's CPU under load. One alarm per session covers them all instead.
  std::map<uint64_t, pending_call> calls;
  /// The earliest alarm scheduled, if any.
  std::optional<caf::actor_clock::time_point> alarm;
  static inline const char* name = "http_session";
};

using session_actor = caf::stateful_actor<http_session_state>;

void complete(session_actor* self, uint64_t position, http::api_response response) {
  auto& st = self->state;
  st.ready.emplace(position, std::move(response));
  for (auto it = st.ready.begin(); it != st.ready.end() && it->first == st.next_response;
       it = st.ready.begin()) {
    auto next = std::move(it->second);
    st.ready.erase(it);
    ++st.next_response;
    st.sink(std::move(next));
  }
}

bool is_write(const http::api_request& req) {
  return std::holds_alternative<http::write_request>(req.body);
}

bool may_start(const http_session_state& st, const http::api_request& req) {
  return is_write(req) ? st.reads_in_flight == 0 : st.writes_in_flight == 0;
}

void start(session_actor* self, uint64_t position, const http::api_request& req);

/// Answers a read or write and starts what waited for it.
void finish(session_actor* self, uint64_t position, bool write, http::api_response response) {
  auto& st = self->state;
  --(write ? st.writes_in_flight : st.reads_in_flight);
  complete(self, position, std::move(response));
  while (!st.waiting.empty() && may_start(st, st.waiting.front().second)) {
    auto next = std::move(st.waiting.front());
    st.waiting.pop_front();
    start(self, next.first, next.second);
  }
}

std::string no_answer_within(caf::timespan timeout) {
  return "no answer within " +
         std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
         " ms";
}

std::string describe(session_actor* self, const caf::error& error, caf::timespan timeout) {
  if (error == caf::sec::request_timeout)
    return no_answer_within(timeout);
  if (error == caf::sec::request_receiver_down)
    return "the node's actors are not running";
  return self->system().render(error);
}

void arm_alarm(session_actor* self, caf::actor_clock::time_point at) {
  auto& st = self->state;
  if (st.alarm && *st.alarm <= at)
    return;
  st.alarm = at;
  self->delayed_send(self, at - self->clock().now(), session_alarm_atom::value,
                     static_cast<int64_t>(at.time_since_epoch().count()));
}

/// Starts waiting for the Raft node's answer to the request at `position`.
void await_call(session_actor* self, uint64_t position, bool write, caf::timespan timeout,
                std::function<http::api_response(const std::string&)> timed_out) {
  auto deadline = self->clock().now() + timeout;
  self->state.calls.emplace(position, pending_call{deadline, timeout, write, std::move(timed_out)});
  arm_alarm(self, deadline);
}

/// The answer for `position` arrived: false if its deadline passed first (the client got its
/// answer then, and this one is dropped).
bool call_answered(session_actor* self, uint64_t position) {
  return self->state.calls.erase(position) > 0;
}

void on_alarm(session_actor* self, int64_t at) {
  auto& st = self->state;
  if (st.alarm && st.alarm->time_since_epoch().count() == at)
    st.alarm.reset();
  auto now = self->clock().now();
  std::vector<std::pair<uint64_t, pending_call>> expired;
  for (auto it = st.calls.begin(); it != st.calls.end();) {
    if (it->second.deadline <= now) {
      expired.emplace_back(it->first, std::move(it->second));
      it = st.calls.erase(it);
    } else {
      ++it;
    }
  }
  for (auto& [position, call] : expired)
    finish(self, position, call.write, call.timed_out(no_answer_within(call.timeout)));
  // Also when a request started by `finish` armed a later alarm than a call still waiting.
  if (!st.calls.empty()) {
    auto earliest = st.calls.begin()->second.deadline;
    for (const auto& [position, call] : st.calls)
      earliest = std::min(earliest, call.deadline);
    arm_alarm(self, earliest);
  }
}

void handle_write(session_actor* self, uint64_t position, const http::api_request& req) {
  auto& st = self->state;
  auto write = std::get<http::write_request>(req.body);
  write.command.client_id = st.config.client_id;
  write.command.sequence = ++st.last_command_sequence;
  auto timeout = st.config.write_timeout;
  await_call(self, position, true, timeout,
             [write](const std::string& why) { return http::write_failed_response(write, why); });
  self->request(st.config.raft, caf::infinite, propose_atom::value, encode_command(write.command))
      .then(
          [=](const client_reply& result) {
            if (call_answered(self, position))
              finish(self, position, true, http::write_response(write, result));
          },
          [=](const caf::error& error) {
            if (call_answered(self, position))
              finish(self, position, true,
                     http::write_failed_response(write, describe(self, error, timeout)));
          });
}

/// Answers from this node's applied state, on this thread: no message to another actor.
void read_local(session_actor* self, uint64_t position, const std::string& key) {
  auto value = self->state.config.view->get(key);
  finish(self, position, false, http::get_response(key, value.has_value(), value ? *value : ""));
}

void handle_get(session_actor* self, uint64_t position, const http::api_request& req) {
  const auto& get = std::get<http::get_request>(req.body);
  if (get.consistency == http::read_consistency::stale) {
    finish(self, position, false, stale_read_response(*self->state.config.view, get.key));
    return;
  }
  auto timeout = self->state.config.read_timeout;
  await_call(self, position, false, timeout,
             [](const std::string& why) { return http::read_failed_response(why); });
  self->request(self->state.config.raft, caf::infinite, read_atom::value)
      .then(
          [=](const client_reply& result) {
            if (!call_answered(self, position))
              return;
            if (result.status == reply_status::ok) {
              // The barrier guarantees the local copy has applied everything committed before the
              // read arrived, so the local get is linearizable.
              read_local(self, position, std::get<http::get_request>(req.body).key);
            } else {
              finish(self, position, false, http::read_barrier_response(result));
            }
          },
          [=](const caf::error& error) {
            if (call_answered(self, position))
              finish(self, position, false,
                     http::read_failed_response(describe(self, error, timeout)));
          });
}

void handle_status(session_actor* self, uint64_t position) {
  auto timeout = self->state.config.status_timeout;
  self->request(self->state.config.raft, timeout, status_atom::value)
      .then(
          [=](const raft_status& status) {
            complete(self, position, http::status_response(status));
          },
          [=](const caf::error& error) {
            complete(self, position, http::status_failed_response(describe(self, error, timeout)));
          });
}

void handle_join(session_actor* self, uint64_t position, const http::join_request& join) {
  // Adding a member waits for the new node to answer and for the change to commit.
  auto timeout = self->state.config.write_timeout + std::chrono::seconds(10);
  self->request(self->state.config.raft, timeout, join_atom::value, join.node_id, join.node_addr)
      .then(
          [=](const client_reply& result) {
            complete(self, position, http::join_result_response(join, result));
          },
          [=](const caf::error& error) {
            client_reply unknown;
            unknown.status = reply_status::timeout;
            unknown.reason = describe(self, error, timeout);
            complete(self, position, http::join_result_response(join, unknown));
          });
}

void handle_remove(session_actor* self, uint64_t position, const http::remove_request& remove) {
  auto timeout = self->state.config.write_timeout + std::chrono::seconds(10);
  self->request(self->state.config.raft, timeout, remove_atom::value, remove.node_id, remove.force)
      .then(
          [=](const client_reply& result) {
            complete(self, position, http::remove_result_response(remove, result));
          },
          [=](const caf::error& error) {
            client_reply unknown;
            unknown.status = reply_status::timeout;
            unknown.reason = describe(self, error, timeout);
            complete(self, position, http::remove_result_response(remove, unknown));
          });
}

void handle_transfer(session_actor* self, uint64_t position,
                     const http::transfer_request& transfer) {
  auto timeout = self->state.config.write_timeout;
  self->request(self->state.config.raft, timeout, transfer_atom::value, transfer.node_id)
      .then(
          [=](const client_reply& result) {
            complete(self, position, http::transfer_result_response(transfer, result));
          },
          [=](const caf::error& error) {
            client_reply unknown;
            unknown.status = reply_status::timeout;
            unknown.reason = describe(self, error, timeout);
            complete(self, position, http::transfer_result_response(transfer, unknown));
          });
}

void handle_members(session_actor* self, uint64_t position) {
  auto timeout = self->state.config.status_timeout;
  self->request(self->state.config.raft, timeout, status_atom::value)
      .then(
          [=](const raft_status& status) {
            complete(self, position, http::members_response(status));
          },
          [=](const caf::error& error) {
            complete(self, position, http::status_failed_response(describe(self, error, timeout)));
          });
}

/// /health, /ready and /metrics: one status query each, answered in arrival order like the rest.
template <class OnStatus, class OnError>
void with_status(session_actor* self, uint64_t position, caf::timespan timeout, OnStatus on_status,
                 OnError on_error) {
  self->request(self->state.config.raft, timeout, status_atom::value)
      .then([=](const raft_status& status) { complete(self, position, on_status(status)); },
            [=](const caf::error& error) {
              complete(self, position, on_error(describe(self, error, timeout)));
            });
}

void handle_probe(session_actor* self, uint64_t position, const http::api_request& req) {
  const auto& cfg = self->state.config;
  if (std::holds_alternative<http::health_request>(req.body)) {
    with_status(
        self, position, cfg.probe_timeout,
        [](const raft_status& status) { return http::health_response(status); },
        [](const std::string& why) { return http::health_failed_response(why); });
  } else if (std::holds_alternative<http::ready_request>(req.body)) {
    auto limits = cfg.readiness;
    auto check = cfg.storage_check;
    with_status(
        self, position, cfg.probe_timeout,
        [limits, check](const raft_status& status) {
          return http::ready_response(status, limits, check ? check() : std::string{});
        },
        [](const std::string& why) { return http::ready_failed_response(why); });
  } else {
    auto counters = cfg.metrics;
    with_status(
        self, position, cfg.status_timeout,
        [counters](const raft_status& status) {
          return http::metrics_text_response(
              metrics::render_metrics(status, counters.get(), metrics::read_process_facts()));
        },
        [](const std::string& why) { return http::status_failed_response(why); });
  }
}

void dispatch(session_actor* self, uint64_t position, const http::api_request& req) {
  if (is_write(req))
    handle_write(self, position, req);
  else
    handle_get(self, position, req);
}

void start(session_actor* self, uint64_t position, const http::api_request& req) {
  bool write = is_write(req);
  if (write)
    ++self->state.writes_in_flight;
  else
    ++self->state.reads_in_flight;
  if (!req.redirect) {
    dispatch(self, position, req);
    return;
  }
  // ?redirect=true: a follower answers 307 to the leader's HTTP address instead of forwarding.
  auto timeout = self->state.config.status_timeout;
  self->request(self->state.config.raft, timeout, status_atom::value)
      .then(
          [=](const raft_status& status) {
            if (status.role == raft_role::leader || status.leader_id.empty() ||
                status.leader_http.empty()) {
              dispatch(self, position, req); // leader, or nobody to redirect to: 503 below
              return;
            }
            finish(self, position, write,
                   http::redirect_response("http://" + status.leader_http + req.target,
                                           status.leader_id));
          },
          [=](const caf::error& error) {
            finish(self, position, write,
                   http::read_failed_response(describe(self, error, timeout)));
          });
}

caf::behavior session_impl(session_actor* self, http_session_config config, response_sink sink) {
  self->state.config = std::move(config);
  self->state.sink = std::move(sink);
  return {
      [=](session_alarm_atom, int64_t at) { on_alarm(self, at); },
      [=](http_req_atom, http::parsed_request& parsed) {
        auto& st = self->state;
        auto position = st.next_request++;
        if (auto* error = std::get_if<http::api_error>(&parsed)) {
          complete(self, position, http::error_response(*error));
          return;
        }
        auto& req = std::get<http::api_request>(parsed);
        if (std::holds_alternative<http::status_request>(req.body)) {
          handle_status(self, position);
        } else if (std::holds_alternative<http::join_request>(req.body)) {
          handle_join(self, position, std::get<http::join_request>(req.body));
        } else if (auto* remove = std::get_if<http::remove_request>(&req.body)) {
          handle_remove(self, position, *remove);
        } else if (auto* transfer = std::get_if<http::transfer_request>(&req.body)) {
          handle_transfer(self, position, *transfer);
        } else if (std::holds_alternative<http::members_request>(req.body)) {
          handle_members(self, position);
        } else if (std::holds_alternative<http::ui_request>(req.body)) {
          complete(self, position, http::ui_response());
        } else if (std::holds_alternative<http::health_request>(req.body) ||
                   std::holds_alternative<http::ready_request>(req.body) ||
                   std::holds_alternative<http::metrics_request>(req.body)) {
          handle_probe(self, position, req);
        } else if (st.waiting.empty() && may_start(st, req)) {
          start(self, position, req);
        } else {
          // A pipelining client expects its requests to take effect in order: a read must see the
          // writes sent before it, and must not see the ones sent after it. Raft keeps writes from
          // one sender in order and concurrent reads do not interfere, so only a switch between
          // reading and writing waits for what is in flight.
          st.waiting.emplace_back(position, std::move(req));
        }
      },
  };
}

} // namespace

http::api_response stale_read_response(const local_read_view& view, const std::string& key) {
  // Even a stale read must not serve a removed node's frozen copy as if it were a member's.
  if (auto removed_at = view.removed_at_index(); removed_at > 0)
    return http::removed_response("this node was removed from the cluster (configuration at "
                                  "index " +
                                  std::to_string(removed_at) + ") and no longer serves");
  auto value = view.get(key);
  return http::get_response(key, value.has_value(), value ? *value : "");
}

bool answers_alone(const http::parsed_request& request) {
  const auto* req = std::get_if<http::api_request>(&request);
  if (req == nullptr || req->redirect)
    return false;
  const auto* get = std::get_if<http::get_request>(&req->body);
  return get != nullptr && get->consistency == http::read_consistency::stale;
}

caf::actor spawn_http_session(caf::actor_system& system, http_session_config config,
                              response_sink sink) {
  return system.spawn(session_impl, std::move(config), std::move(sink));
}

void submit_http_request(const caf::actor& session, http::parsed_request request) {
  caf::anon_send(session, http_req_atom::value, std::move(request));
}

} // namespace infinity
