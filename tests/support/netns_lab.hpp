// A private network of Linux network namespaces for fault tests: one namespace per node and a hub
// namespace holding a bridge, every node wired to it by a veth pair. Addresses are 10.77.0.N/24
// for node N (1-based) and 10.77.0.254 for the hub. Nothing touches the caller's own network
// namespace: the thread that builds the lab moves into the hub (and so do the threads and
// processes it creates afterwards), node processes move into their own namespace between fork
// and exec, and the destructor moves the thread back and deletes every namespace.
//
// Faults are nftables rules inside each node's namespace (sets of peer addresses whose packets
// are dropped on input and/or output, and a set of peers whose packets are dropped at random),
// so a partition is silent, like a real one: no RST, no ICMP. The hub (the test's HTTP clients)
// is cut only when a fault says so.
//
// Needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN), `ip` from iproute2, and `nft` from nftables.
// `unavailable()` says why a lab cannot be built here, for tests that must then skip.
#pragma once

#include <cstddef>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace infinity::test {

class netns_lab {
 public:
  /// Why no lab can be built on this machine (no root, no ip/nft, namespaces or nftables not
  /// supported), or nullopt when it can. Builds and tears down a one-node lab to find out.
  static std::optional<std::string> unavailable();

  /// Builds the hub and `nodes` node namespaces (names prefixed with `tag` and this process's id)
  /// and moves the calling thread into the hub. Throws std::runtime_error naming the failed
  /// command. `loss_percent` is the drop rate of links put in the lossy set.
  netns_lab(std::string tag, std::size_t nodes, int loss_percent = 30);
  netns_lab(const netns_lab&) = delete;
  netns_lab& operator=(const netns_lab&) = delete;
  /// Moves the thread back to its original namespace and deletes the namespaces. Processes still
  /// running in them keep them alive: kill the nodes first.
  ~netns_lab();

  /// 10.77.0.(i + 1): node i's address, 0-based.
  static std::string node_address(std::size_t i);
  static std::string hub_address() { return "10.77.0.254"; }
  /// An open O_CLOEXEC descriptor of node i's namespace, for setns(2) in a forked child.
  int node_fd(std::size_t i) const { return node_fds_.at(i); }
  const std::string& node_ns(std::size_t i) const { return node_names_.at(i); }

  /// What node i drops. `peers` are 0-based node indexes; `clients` stands for the hub.
  struct filter {
    std::set<std::size_t> drop_from; // input: packets from these peers are dropped
    std::set<std::size_t> drop_to;   // output: packets to these peers are dropped
    std::set<std::size_t> lossy;     // both ways, at loss_percent
    bool clients_cut = false;        // the hub (test clients) both ways
  };
  /// Replaces node i's rules (atomically for that node).
  void apply(std::size_t i, const filter& f);
  /// Every node's rules cleared.
  void heal();

 private:
  void run(const std::string& command) const;
  void teardown();

  std::string prefix_;
  std::size_t nodes_;
  std::string hub_name_;
  std::vector<std::string> node_names_;
  std::vector<int> node_fds_;
  int original_ns_fd_ = -1;
  std::vector<std::string> created_;
};

} // namespace infinity::test
