#include "tests/support/netns_lab.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

namespace infinity::test {

namespace {

struct command_result {
  int status = -1;
  std::string output;
};

/// Runs a shell command with stdout and stderr captured.
command_result shell(const std::string& command) {
  command_result result;
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) {
    result.output = std::string{"popen: "} + std::strerror(errno);
    return result;
  }
  char buf[512];
  while (std::fgets(buf, sizeof buf, pipe) != nullptr)
    result.output += buf;
  result.status = ::pclose(pipe);
  return result;
}

const char* const ruleset_template = R"(table inet fault {
  set cut_in { type ipv4_addr; }
  set cut_out { type ipv4_addr; }
  set lossy { type ipv4_addr; }
  chain input {
    type filter hook input priority 0; policy accept;
    ip saddr @cut_in drop
    ip saddr @lossy numgen random mod 100 < LOSS drop
  }
  chain output {
    type filter hook output priority 0; policy accept;
    ip daddr @cut_out drop
    ip daddr @lossy numgen random mod 100 < LOSS drop
  }
}
)";

std::string ruleset(int loss_percent) {
  std::string text = ruleset_template;
  for (auto pos = text.find("LOSS"); pos != std::string::npos; pos = text.find("LOSS"))
    text.replace(pos, 4, std::to_string(loss_percent));
  return text;
}

/// Feeds `script` to nft inside namespace `ns` (via a temporary file: popen has one direction).
command_result nft_in(const std::string& ns, const std::string& script) {
  char path[] = "/tmp/netns-lab-nft.XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0)
    return {-1, std::string{"mkstemp: "} + std::strerror(errno)};
  bool written = ::write(fd, script.data(), script.size()) == static_cast<ssize_t>(script.size());
  ::close(fd);
  command_result result{-1, "cannot write " + std::string{path}};
  if (written)
    result = shell("ip netns exec '" + ns + "' nft -f '" + path + "'");
  ::unlink(path);
  return result;
}

/// Namespaces left behind by a lab whose process died (names carry the owner's pid).
void delete_orphans(const std::string& tag) {
  auto listed = shell("ip netns list");
  std::istringstream lines{listed.output};
  for (std::string line; std::getline(lines, line);) {
    auto name = line.substr(0, line.find(' '));
    if (name.rfind(tag + "-", 0) != 0)
      continue;
    auto rest = name.substr(tag.size() + 1);
    auto dash = rest.find('-');
    if (dash == std::string::npos)
      continue;
    auto pid = static_cast<pid_t>(std::strtol(rest.substr(0, dash).c_str(), nullptr, 10));
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH)
      shell("ip netns delete '" + name + "'");
  }
}

} // namespace

std::optional<std::string> netns_lab::unavailable() {
  if (::geteuid() != 0)
    return "not running as root (uid " + std::to_string(::geteuid()) + ")";
  if (auto r = shell("ip -V"); r.status != 0)
    return "no `ip` (iproute2): " + r.output;
  if (auto r = shell("nft --version"); r.status != 0)
    return "no `nft` (nftables): " + r.output;
  // A whole one-node lab, built and torn down: the probe fails where the tests would.
  try {
    netns_lab probe{"netns-lab-probe", 1};
  } catch (const std::exception& e) {
    return e.what();
  }
  return std::nullopt;
}

netns_lab::netns_lab(std::string tag, std::size_t nodes, int loss_percent) : nodes_(nodes) {
  delete_orphans(tag);
  prefix_ = tag + "-" + std::to_string(::getpid()) + "-";
  hub_name_ = prefix_ + "hub";
  try {
    run("ip netns add '" + hub_name_ + "'");
    created_.push_back(hub_name_);
    run("ip -n '" + hub_name_ + "' link set lo up");
    run("ip -n '" + hub_name_ + "' link add br0 type bridge");
    run("ip -n '" + hub_name_ + "' addr add " + hub_address() + "/24 dev br0");
    run("ip -n '" + hub_name_ + "' link set br0 up");
    auto rules = ruleset(loss_percent);
    for (std::size_t i = 0; i < nodes; ++i) {
      auto ns = prefix_ + "n" + std::to_string(i + 1);
      auto port = "v" + std::to_string(i + 1);
      run("ip netns add '" + ns + "'");
      created_.push_back(ns);
      node_names_.push_back(ns);
      run("ip -n '" + ns + "' link set lo up");
      // Created inside the hub, so no interface ever appears in the caller's namespace.
      run("ip -n '" + hub_name_ + "' link add " + port + " type veth peer name eth0 netns '" + ns +
          "'");
      run("ip -n '" + hub_name_ + "' link set " + port + " master br0 up");
      run("ip -n '" + ns + "' addr add " + node_address(i) + "/24 dev eth0");
      run("ip -n '" + ns + "' link set eth0 up");
      if (auto r = nft_in(ns, rules); r.status != 0)
        throw std::runtime_error("nft in " + ns + " failed: " + r.output);
      int fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0)
        throw std::runtime_error("open /run/netns/" + ns + ": " + std::strerror(errno));
      node_fds_.push_back(fd);
    }
    original_ns_fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    if (original_ns_fd_ < 0)
      throw std::runtime_error(std::string{"open /proc/thread-self/ns/net: "} +
                               std::strerror(errno));
    int hub_fd = ::open(("/run/netns/" + hub_name_).c_str(), O_RDONLY | O_CLOEXEC);
    if (hub_fd < 0)
      throw std::runtime_error("open /run/netns/" + hub_name_ + ": " + std::strerror(errno));
    int rc = ::setns(hub_fd, CLONE_NEWNET);
    int err = errno;
    ::close(hub_fd);
    if (rc != 0)
      throw std::runtime_error(std::string{"setns into the hub: "} + std::strerror(err));
  } catch (...) {
    teardown();
    throw;
  }
}

netns_lab::~netns_lab() {
  teardown();
}

void netns_lab::teardown() {
  if (original_ns_fd_ >= 0) {
    (void)::setns(original_ns_fd_, CLONE_NEWNET);
    ::close(original_ns_fd_);
    original_ns_fd_ = -1;
  }
  for (int fd : node_fds_)
    ::close(fd);
  node_fds_.clear();
  for (auto& ns : created_)
    shell("ip netns delete '" + ns + "'");
  created_.clear();
}

std::string netns_lab::node_address(std::size_t i) {
  return "10.77.0." + std::to_string(i + 1);
}

void netns_lab::apply(std::size_t i, const filter& f) {
  auto elements = [](const std::set<std::size_t>& peers, bool with_hub) {
    std::string list;
    for (auto p : peers)
      list += (list.empty() ? "" : ", ") + node_address(p);
    if (with_hub)
      list += (list.empty() ? "" : ", ") + hub_address();
    return list;
  };
  std::string script = "flush set inet fault cut_in\nflush set inet fault cut_out\n"
                       "flush set inet fault lossy\n";
  auto add = [&](const char* set, const std::string& list) {
    if (!list.empty())
      script += std::string{"add element inet fault "} + set + " { " + list + " }\n";
  };
  add("cut_in", elements(f.drop_from, f.clients_cut));
  add("cut_out", elements(f.drop_to, f.clients_cut));
  add("lossy", elements(f.lossy, false));
  if (auto r = nft_in(node_names_.at(i), script); r.status != 0)
    throw std::runtime_error("nft in " + node_names_.at(i) + " failed: " + r.output);
}

void netns_lab::heal() {
  for (std::size_t i = 0; i < nodes_; ++i)
    apply(i, filter{});
}

void netns_lab::run(const std::string& command) const {
  auto r = shell(command);
  if (r.status != 0)
    throw std::runtime_error("`" + command + "` failed: " + r.output);
}

} // namespace infinity::test
