// Cluster configuration as carried by `entry_kind::config` log entries: the voters and the
// learners (non-voting members that receive the log), each id -> Raft address.
//
// A node always uses the latest configuration in its log, committed or not (Raft thesis §4.1).
// Changes go one server at a time (thesis §4.2): a node joins as a learner, is promoted to voter
// once it has caught up, or is removed; so any two majorities of consecutive configurations
// overlap. Only voters vote, campaign and count toward a commit or a read quorum.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace infinity {

/// Ordered so that broadcasts and encodings are deterministic.
using membership = std::map<std::string, std::string>;

struct configuration {
  membership voters;
  membership learners;

  bool contains(const std::string& id) const {
    return voters.count(id) > 0 || learners.count(id) > 0;
  }
  /// Voters and learners: everyone the leader replicates to.
  membership everyone() const {
    membership all = voters;
    all.insert(learners.begin(), learners.end());
    return all;
  }
};

inline bool operator==(const configuration& a, const configuration& b) {
  return a.voters == b.voters && a.learners == b.learners;
}
inline bool operator!=(const configuration& a, const configuration& b) {
  return !(a == b);
}

/// One line per member, "id=address" for a voter and "learner:id=address" for a learner (":" is
/// not an id character, so older decoders reject learners instead of taking them for voters).
/// Ids and addresses may not contain '=', '\n' or NUL; see `valid_member_id`.
std::string encode_configuration(const configuration& config);
bool decode_configuration(std::string_view bytes, configuration& out);

/// A configuration of voters only.
std::string encode_membership(const membership& voters);
/// The voters of a configuration (learners are ignored).
bool decode_membership(std::string_view bytes, membership& out);

/// Node ids: 1..64 characters of [A-Za-z0-9._-], other than "." and "..".
bool valid_member_id(std::string_view id);

} // namespace infinity
