// The text of `infinityctl --help` and `infinityctl COMMAND --help`.
#include "app/ctl/ctl_options.hpp"

namespace infinity::ctl {
namespace {

constexpr const char* tool_help = R"text(Usage: infinityctl [options] COMMAND [ARGS...]

A command-line client for InfinityStore clusters. Any node serves any request: followers
forward writes and reads to the leader.

Commands:
  put KEY VALUE          set KEY to VALUE; VALUE "-" reads the value from stdin
  get KEY                print KEY's value
  del KEY                delete KEY (also succeeds when it does not exist)
  status                 every endpoint's Raft status: id, role, term, leader, indexes
  members                the cluster's members
  join ID RAFT_ADDR      add node ID, whose Raft endpoint is RAFT_ADDR, to the cluster
  remove ID              remove node ID from the cluster
  transfer-leader [ID]   ask the leader to hand over leadership (to ID)
  help [COMMAND]         this help, or a command's (also: infinityctl COMMAND --help)

Options (before or after the command):
  --endpoints LIST       HOST:PORT,... tried in order; http:// or https:// prefixes allowed
                         [INFINITYCTL_ENDPOINTS, else 127.0.0.1:8001]
  -o, --output FORMAT    table or json [table]; json prints the server's reply (one JSON
                         document per command)
  --consistency MODE     get only: linearizable or stale (this node's copy, may lag)
                         [linearizable]
  --timeout DURATION     limit for each request [5s]
  --command-timeout DURATION
                         limit for the whole command, retries included [15s]
  --token-file FILE      send "Authorization: Bearer <the file's first line>"
  --cacert FILE          CA certificates (PEM) that https:// endpoints must chain to
                         [the system's]
  -h, --help             print help and exit
  --version              print the version and exit
  --                     ends the options: later words are arguments even when they start
                         with "-" (infinityctl get -- -odd-key)
  Durations: 500ms, 5s, 1m, 1h, or a number of seconds (2.5).

Failover: an endpoint that cannot be reached, times out or answers 503 or another 5xx is
skipped for the next one; redirects (307) are followed, at most 3 hops. While some endpoint
answers but the cluster has no leader (503), the list is retried until --command-timeout.
A write the server answered with 500 is not retried: its outcome is unknown.

Exit status:
  0  success
  1  not found (get of a key that does not exist)
  2  usage error (bad command, option or argument; nothing was sent)
  3  unavailable (no endpoint answered usefully, timeout, every endpoint 5xx, outcome of a
     write unknown, or the server does not support the command)
  4  refused by the server (a 4xx other than 404; its message is printed)

Examples:
  infinityctl --endpoints 127.0.0.1:8001,127.0.0.1:8011 put greeting 'hello world'
  infinityctl get greeting                  # prints: hello world
  infinityctl put config - < settings.json
  infinityctl get --consistency stale greeting
  infinityctl -o json status
)text";

constexpr const char* footer = R"text(
Global options (--endpoints, -o, --timeout, ...): see infinityctl --help.
)text";

const char* command_help(command_kind command) {
  switch (command) {
  case command_kind::put:
    return R"text(Usage: infinityctl [options] put KEY VALUE
       infinityctl [options] put KEY - < FILE

Sets KEY to VALUE once the cluster has committed and applied the write. With VALUE "-" the
value is read from stdin exactly as given, a trailing newline included. Keys and values are
UTF-8 text (the API carries them as JSON strings).

Prints "OK (index N)", N being the write's log index; -o json prints the server's reply.
Exit status: 0 written, 2 usage, 3 unavailable or outcome unknown, 4 refused (e.g. too large).
)text";
  case command_kind::get:
    return R"text(Usage: infinityctl [options] get [--consistency stale] KEY

Prints KEY's value followed by a newline, so `v=$(infinityctl get KEY)` works; -o json prints
the server's reply {"key","value"}. Reads are linearizable: the value is at least as recent as
any write acknowledged before the read began. --consistency stale returns the first answering
endpoint's own copy instead, which can lag the leader.

Exit status: 0 found, 1 no such key (nothing on stdout), 2 usage, 3 unavailable, 4 refused.
)text";
  case command_kind::del:
    return R"text(Usage: infinityctl [options] del KEY

Deletes KEY once the cluster has committed and applied the delete; deleting a key that does
not exist succeeds too. Prints "OK (index N)"; -o json prints the server's reply.

Exit status: 0 deleted, 2 usage, 3 unavailable or outcome unknown, 4 refused.
)text";
  case command_kind::status:
    return R"text(Usage: infinityctl [options] status

Asks every endpoint for its /status (no failover: each one is asked directly) and prints a
table: endpoint, node id, role, term, the leader it knows, commit index, applied index and
last log index. -o json prints {"endpoints":[{"endpoint","status"} or {"endpoint","error"}]}.

Exit status: 0 every endpoint answered, 3 some did not (their errors are listed), 2 usage.
)text";
  case command_kind::members:
    return R"text(Usage: infinityctl [options] members

Lists the cluster's members. Uses the server's /members when it has one; otherwise derives
the list from /status of every endpoint: the members as the leader (or the most recent
answering node) sees them, the leader's addresses, and the HTTP address of every member
that is one of the endpoints. -o json prints /members' reply, or
{"leader","members":[{"id","leader","http_addr","raft_addr"}]} (unknown addresses null).

Exit status: 0 listed, 2 usage, 3 no endpoint answered.
)text";
  case command_kind::join:
    return R"text(Usage: infinityctl [options] join ID RAFT_ADDR

Adds node ID, whose Raft endpoint is RAFT_ADDR (HOST:PORT), to the cluster and waits until
the new membership is committed. Start the node first with an empty data directory and no
--initial-cluster, then join it. Joining twice is harmless.
Prints "OK (index N)"; -o json prints the server's reply.

Exit status: 0 joined, 2 usage, 3 unavailable, 4 refused (409: the node holds writes of its
own or belongs to another cluster; nothing changed).
)text";
  case command_kind::remove:
    return R"text(Usage: infinityctl [options] remove ID

Removes node ID from the cluster (POST /remove?nodeid=ID). Servers without membership removal
answer 404: infinityctl then says the server does not support remove and exits 3.

Exit status: 0 removed, 2 usage, 3 unavailable or unsupported, 4 refused.
)text";
  case command_kind::transfer_leader:
    return R"text(Usage: infinityctl [options] transfer-leader [ID]

Asks the leader to hand leadership to node ID, or to a member of its choice
(POST /transfer-leader[?nodeid=ID]). Servers without leadership transfer answer 404:
infinityctl then says the server does not support transfer-leader and exits 3.

Exit status: 0 transferred, 2 usage, 3 unavailable or unsupported, 4 refused.
)text";
  }
  return "";
}

} // namespace

std::string help_text(std::optional<command_kind> command) {
  if (!command)
    return tool_help;
  return std::string{command_help(*command)} + footer;
}

} // namespace infinity::ctl
