#include "actors/messages.hpp"

namespace infinity {

const char* to_string(raft_role role) {
  switch (role) {
  case raft_role::follower:
    return "follower";
  case raft_role::pre_candidate:
    return "pre-candidate";
  case raft_role::candidate:
    return "candidate";
  case raft_role::leader:
    return "leader";
  }
  return "unknown";
}

const char* to_string(propose_status status) {
  switch (status) {
  case propose_status::ok:
    return "ok";
  case propose_status::not_leader:
    return "not_leader";
  case propose_status::leadership_lost:
    return "leadership_lost";
  case propose_status::timeout:
    return "timeout";
  case propose_status::no_leader:
    return "no_leader";
  case propose_status::stopping:
    return "stopping";
  case propose_status::busy:
    return "busy";
  case propose_status::rejected:
    return "rejected";
  case propose_status::unreachable:
    return "unreachable";
  }
  return "unknown";
}

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<log_entry>("log_entry");
  cfg.add_message_type<request_vote>("request_vote");
  cfg.add_message_type<vote_reply>("vote_reply");
  cfg.add_message_type<append_entries>("append_entries");
  cfg.add_message_type<append_reply>("append_reply");
  cfg.add_message_type<kv_command>("kv_command");
  cfg.add_message_type<propose_result>("propose_result");
  cfg.add_message_type<hard_state>("hard_state");
  cfg.add_message_type<persist_request>("persist_request");
  cfg.add_message_type<apply_batch>("apply_batch");
  cfg.add_message_type<raft_status>("raft_status");
}

} // namespace infinity
