#include "app/cluster_bootstrap.hpp"

#include <stdexcept>
#include <string>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/http_api.hpp"

namespace infinity {

namespace {

bool empty_state(const recovered_state& state) {
  return state.entries.empty() && state.state.term == 0 && state.state.voted_for.empty();
}

/// Exactly what a bootstrap writes and nothing more: nothing can have happened on top of it.
bool bootstrap_only(const recovered_state& state) {
  return state.state.term == 1 && state.state.voted_for.empty() && state.entries.size() == 1 &&
         state.entries[0].index == 1 && state.entries[0].kind == entry_kind::config;
}

std::string hex64(uint64_t value) {
  static const char digits[] = "0123456789abcdef";
  std::string out(16, '0');
  for (int i = 15; i >= 0; --i, value >>= 4)
    out[static_cast<size_t>(i)] = digits[value & 0xF];
  return out;
}

std::string describe_members(const membership& members) {
  std::string names;
  for (const auto& [id, address] : members)
    names += (names.empty() ? "" : ", ") + id;
  return "{" + names + "}";
}

} // namespace

std::string static_cluster_id(const membership& members) {
  // FNV-1a over the canonical encoding: stable across versions and platforms.
  uint64_t hash = 0xCBF29CE484222325ULL;
  for (unsigned char c : encode_membership(members))
    hash = (hash ^ c) * 0x100000001B3ULL;
  return "s" + hex64(hash);
}

prepared_directory prepare_data_directory(file_storage& storage, recovered_state recovered,
                                          const node_options& options, uint64_t random) {
  prepared_directory out;
  const auto& dir = options.data_dir;
  auto refuse = [&](const std::string& why) {
    return std::runtime_error("cannot use --data-dir '" + dir + "': " + why);
  };
  auto identity = storage.identity();
  if (identity && !identity->node_id.empty() && identity->node_id != options.node_id)
    throw refuse("it belongs to node " + identity->node_id + ", not to --node-id " +
                 options.node_id);
  if (identity && !identity->cluster_id.empty() && !options.initial_cluster.empty()) {
    membership asked(options.initial_cluster.begin(), options.initial_cluster.end());
    // A lone node that was added to a cluster keeps that cluster's id; only a directory that
    // was bootstrapped statically must match the --initial-cluster given now.
    if (identity->cluster_id[0] == 's' && identity->cluster_id != static_cluster_id(asked))
      throw refuse("it belongs to cluster " + identity->cluster_id +
                   ", and --initial-cluster describes another one (" + static_cluster_id(asked) +
                   "); remove --initial-cluster to use the directory, or use another directory");
  }
  auto members = latest_membership(recovered);
  if (!members.empty() && members.count(options.node_id) == 0 && !identity)
    throw refuse("its membership " + describe_members(members) + " does not include --node-id " +
                 options.node_id + "; it belongs to another node");

  if (recovered.damage) {
    // A member of a cluster can get lost entries back from the leader; a lone node cannot.
    bool lone = members.size() <= 1;
    if (lone)
      throw refuse(recovered.damage->description +
                   "; a one-node cluster has no peer to recover the lost entries from: restore the "
                   "directory from a backup, or move it away to start empty");
    storage.accept_repair();
    recovered.state = storage.durable_hard_state();
    recovered.damage.reset();
    out.repair_warning = "storage damage repaired by cutting the log after index " +
                         std::to_string(recovered.entries.size()) +
                         "; not voting and not counting toward commits until caught up to index " +
                         std::to_string(recovered.state.repair_until_index) + " from the leader";
  }

  if (identity) {
    recovered.cluster_id = identity->cluster_id;
    if (empty_state(recovered) && options.join.empty() && !identity->cluster_id.empty())
      throw refuse("its identity says it holds node " + identity->node_id + " of cluster " +
                   identity->cluster_id +
                   ", but its log and hard state are gone; refusing to start over as a new member");
    out.state = std::move(recovered);
    out.description =
        "using the existing state in the data directory (cluster " +
        (out.state.cluster_id.empty() ? std::string{"not known yet"} : out.state.cluster_id) + ")";
    return out;
  }

  if (!empty_state(recovered) && !bootstrap_only(recovered)) {
    // Written by a version that did not record identities: adopt it for this node.
    node_identity adopted{options.node_id, {}};
    if (!recovered.entries.empty() && recovered.entries[0].kind == entry_kind::config) {
      membership first;
      if (decode_membership(recovered.entries[0].data, first) && first.size() > 1)
        adopted.cluster_id = static_cluster_id(first);
    }
    storage.record_identity(adopted);
    recovered.cluster_id = adopted.cluster_id;
    out.state = std::move(recovered);
    out.description = "using the existing state in the data directory (recorded its identity)";
    return out;
  }

  // An empty directory, or one whose bootstrap was interrupted before its identity was
  // recorded (nothing can have happened on top of a bootstrap without it): bootstrap now.
  membership initial;
  std::string cluster_id;
  if (!options.initial_cluster.empty()) {
    auto self = options.initial_cluster.find(options.node_id);
    if (self == options.initial_cluster.end())
      throw std::runtime_error("--initial-cluster does not list this node (" + options.node_id +
                               ")");
    if (self->second != options.raft_addr)
      throw std::runtime_error("--initial-cluster lists " + options.node_id + " at " +
                               self->second + " but --raft-addr is " + options.raft_addr);
    for (const auto& [id, address] : options.initial_cluster)
      initial.emplace(id, address);
    cluster_id = static_cluster_id(initial);
    out.description = "bootstrapping cluster " + cluster_id + " of " +
                      std::to_string(initial.size()) + " members";
  } else if (options.join.empty()) {
    initial.emplace(options.node_id, options.raft_addr);
    cluster_id = "l" + hex64(random);
    out.description = "bootstrapping a one-node cluster " + cluster_id;
  } else {
    storage.record_identity(node_identity{options.node_id, {}});
    out.bootstrapped_now = true;
    out.description = "empty data directory: waiting to be added through " + options.join;
    return out;
  }
  if (!empty_state(recovered)) {
    // The interrupted bootstrap's state must be the one we would write now.
    membership earlier;
    decode_membership(recovered.entries[0].data, earlier);
    if (earlier != initial)
      throw refuse("it holds the bootstrap of another cluster " + describe_members(earlier) +
                   " that was never completed; remove it to bootstrap " +
                   describe_members(initial));
  } else {
    // Term 1 and one membership entry, identical on every node of a static bootstrap.
    persist_request boot;
    boot.has_hard_state = true;
    boot.state = hard_state{1, {}, 0};
    boot.entries.push_back(log_entry{1, 1, entry_kind::config, encode_membership(initial)});
    storage.write(boot);
    storage.sync();
    recovered.state = boot.state;
    recovered.entries = boot.entries;
  }
  // Last: a directory with an identity is a complete bootstrap.
  storage.record_identity(node_identity{options.node_id, cluster_id});
  recovered.cluster_id = cluster_id;
  out.state = std::move(recovered);
  out.bootstrapped_now = true;
  return out;
}

membership latest_membership(const recovered_state& state) {
  membership result;
  for (auto i = state.entries.rbegin(); i != state.entries.rend(); ++i)
    if (i->kind == entry_kind::config && decode_membership(i->data, result))
      return result;
  return {};
}

int request_join(const std::string& http_host_port, const std::string& node_id,
                 const std::string& raft_addr, std::string& body, const std::string& admin_token) {
  namespace beast = boost::beast;
  namespace http = beast::http;
  namespace net = boost::asio;
  auto target = infinity::http::parse_host_port(http_host_port);
  if (!target) {
    body = "invalid --join address " + http_host_port;
    return 0;
  }
  try {
    net::io_context io;
    net::ip::tcp::resolver resolver{io};
    beast::tcp_stream stream{io};
    stream.expires_after(std::chrono::seconds(15));
    auto host = target->host.empty() ? std::string{"127.0.0.1"} : target->host;
    stream.connect(resolver.resolve(host, std::to_string(target->port)));
    http::request<http::string_body> request{
        http::verb::post, "/join?nodeid=" + node_id + "&nodeaddr=" + raft_addr, 11};
    request.set(http::field::host, host);
    if (!admin_token.empty())
      request.set(http::field::authorization, "Bearer " + admin_token);
    request.prepare_payload();
    http::write(stream, request);
    beast::flat_buffer buffer;
    http::response<http::string_body> response;
    http::read(stream, buffer, response);
    body = response.body();
    beast::error_code ignored;
    stream.socket().shutdown(net::ip::tcp::socket::shutdown_both, ignored);
    return static_cast<int>(response.result_int());
  } catch (const std::exception& e) {
    body = e.what();
    return 0;
  }
}

} // namespace infinity
