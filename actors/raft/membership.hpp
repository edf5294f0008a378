// Cluster membership as carried by `entry_kind::config` log entries: member id -> Raft address.
//
// A node always uses the latest membership in its log, committed or not (Raft thesis §4.1), and
// changes add or remove one voter at a time, so any two majorities of consecutive memberships
// overlap.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace infinity {

/// Ordered so that broadcasts and encodings are deterministic.
using membership = std::map<std::string, std::string>;

/// Ids and addresses may not contain '=', '\n' or NUL; see `valid_member_id`.
std::string encode_membership(const membership& members);
bool decode_membership(std::string_view bytes, membership& out);

/// Node ids: 1..64 characters of [A-Za-z0-9._-], other than "." and "..".
bool valid_member_id(std::string_view id);

} // namespace infinity
