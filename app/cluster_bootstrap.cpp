#include "app/cluster_bootstrap.hpp"

#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "net/http_api.hpp"

namespace infinity {

recovered_state bootstrap_if_empty(storage_backend& storage, recovered_state recovered,
                                   const node_options& options, std::string& log_line) {
  if (!recovered.entries.empty() || recovered.state.term != 0) {
    log_line = "using the existing state in the data directory";
    return recovered;
  }
  membership initial;
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
    log_line = "bootstrapping a cluster of " + std::to_string(initial.size()) + " members";
  } else if (options.join.empty()) {
    initial.emplace(options.node_id, options.raft_addr);
    log_line = "bootstrapping a one-node cluster";
  } else {
    log_line = "empty data directory: waiting to be added through " + options.join;
    return recovered;
  }
  // Term 1 and one membership entry, identical on every node of a static bootstrap.
  persist_request boot;
  boot.has_hard_state = true;
  boot.state = hard_state{1, {}};
  boot.entries.push_back(log_entry{1, 1, entry_kind::config, encode_membership(initial)});
  storage.write(boot);
  storage.sync();
  recovered.state = boot.state;
  recovered.entries = boot.entries;
  return recovered;
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
