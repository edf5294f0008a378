#include "actors/messages.hpp"

namespace infinity {

void register_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<log_entry>("log_entry");
  cfg.add_message_type<client_reply>("client_reply");
  cfg.add_message_type<request_vote>("request_vote");
  cfg.add_message_type<vote_reply>("vote_reply");
  cfg.add_message_type<append_entries>("append_entries");
  cfg.add_message_type<append_reply>("append_reply");
  cfg.add_message_type<forward_request>("forward_request");
  cfg.add_message_type<forward_reply>("forward_reply");
  cfg.add_message_type<join_probe>("join_probe");
  cfg.add_message_type<join_probe_reply>("join_probe_reply");
  cfg.add_message_type<timeout_now>("timeout_now");
  cfg.add_message_type<snapshot_info>("snapshot_info");
  cfg.add_message_type<install_snapshot>("install_snapshot");
  cfg.add_message_type<install_snapshot_reply>("install_snapshot_reply");
  cfg.add_message_type<member_progress>("member_progress");
  cfg.add_message_type<kv_command>("kv_command");
  cfg.add_message_type<hard_state>("hard_state");
  cfg.add_message_type<persist_request>("persist_request");
  cfg.add_message_type<apply_batch>("apply_batch");
  cfg.add_message_type<entry_result>("entry_result");
  cfg.add_message_type<applied_batch>("applied_batch");
  cfg.add_message_type<raft_status>("raft_status");
}

} // namespace infinity
