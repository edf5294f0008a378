#include "actors/types.hpp"

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

const char* to_string(reply_status status) {
  switch (status) {
  case reply_status::ok:
    return "ok";
  case reply_status::not_leader:
    return "not_leader";
  case reply_status::leadership_lost:
    return "leadership_lost";
  case reply_status::timeout:
    return "timeout";
  case reply_status::no_leader:
    return "no_leader";
  case reply_status::stopping:
    return "stopping";
  case reply_status::busy:
    return "busy";
  case reply_status::rejected:
    return "rejected";
  case reply_status::unreachable:
    return "unreachable";
  case reply_status::removed:
    return "removed";
  }
  return "unknown";
}

} // namespace infinity
