#include "actors/raft/membership.hpp"

namespace infinity {
namespace {

constexpr std::string_view learner_prefix = "learner:";

void encode_lines(std::string& out, const membership& members, std::string_view prefix) {
  for (const auto& [id, address] : members) {
    out += prefix;
    out += id;
    out += '=';
    out += address;
    out += '\n';
  }
}

} // namespace

std::string encode_configuration(const configuration& config) {
  std::string out;
  encode_lines(out, config.voters, {});
  encode_lines(out, config.learners, learner_prefix);
  return out;
}

bool decode_configuration(std::string_view bytes, configuration& out) {
  out = configuration{};
  while (!bytes.empty()) {
    auto end = bytes.find('\n');
    if (end == std::string_view::npos)
      return false;
    auto line = bytes.substr(0, end);
    bytes.remove_prefix(end + 1);
    auto* target = &out.voters;
    if (line.substr(0, learner_prefix.size()) == learner_prefix) {
      target = &out.learners;
      line.remove_prefix(learner_prefix.size());
    }
    auto eq = line.find('=');
    if (eq == std::string_view::npos || !valid_member_id(line.substr(0, eq)))
      return false;
    std::string id(line.substr(0, eq));
    if (out.contains(id))
      return false;
    target->emplace(std::move(id), std::string(line.substr(eq + 1)));
  }
  return true;
}

std::string encode_membership(const membership& voters) {
  return encode_configuration(configuration{voters, {}});
}

bool decode_membership(std::string_view bytes, membership& out) {
  configuration config;
  if (!decode_configuration(bytes, config))
    return false;
  out = std::move(config.voters);
  return true;
}

bool valid_member_id(std::string_view id) {
  if (id.empty() || id.size() > 64)
    return false;
  // Ids name data directories (data/<id>): "." and ".." would write into another directory.
  if (id == "." || id == "..")
    return false;
  for (char c : id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

} // namespace infinity
