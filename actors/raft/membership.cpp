#include "actors/raft/membership.hpp"

namespace infinity {

std::string encode_membership(const membership& members) {
  std::string out;
  for (const auto& [id, address] : members) {
    out += id;
    out += '=';
    out += address;
    out += '\n';
  }
  return out;
}

bool decode_membership(std::string_view bytes, membership& out) {
  out.clear();
  while (!bytes.empty()) {
    auto end = bytes.find('\n');
    if (end == std::string_view::npos)
      return false;
    auto line = bytes.substr(0, end);
    bytes.remove_prefix(end + 1);
    auto eq = line.find('=');
    if (eq == std::string_view::npos || !valid_member_id(line.substr(0, eq)))
      return false;
    if (!out.emplace(std::string(line.substr(0, eq)), std::string(line.substr(eq + 1))).second)
      return false;
  }
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
