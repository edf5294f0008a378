// Unit tests of the KV state machine: in-order application, set/delete semantics, duplicate
// suppression by (client, sequence) within the window, and tolerance of malformed payloads.
#include <algorithm>
#include <deque>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "actors/kv/command_codec.hpp"
#include "actors/kv/command_id_window.hpp"
#include "actors/kv/kv_shard.hpp"
#include "actors/kv/state_machine.hpp"

using namespace infinity;

namespace {

log_entry command_entry(uint64_t index, kv_op op, std::string key, std::string value,
                        uint64_t client = 0, uint64_t sequence = 0) {
  kv_command command{op, std::move(key), std::move(value), client, sequence};
  return log_entry{1, index, entry_kind::command, encode_command(command)};
}

} // namespace

BOOST_AUTO_TEST_SUITE(kv_state_machine_tests)

BOOST_AUTO_TEST_CASE(set_get_delete) {
  kv_state_machine machine;
  machine.apply(command_entry(1, kv_op::set, "a", "1"));
  machine.apply(command_entry(2, kv_op::set, "a", "2"));
  BOOST_TEST(machine.get("a").value() == "2");
  machine.apply(log_entry{1, 3, entry_kind::noop, {}});
  machine.apply(command_entry(4, kv_op::del, "a", ""));
  BOOST_TEST(!machine.get("a").has_value());
  machine.apply(command_entry(5, kv_op::del, "missing", ""));
  BOOST_TEST(machine.last_applied() == 5u);
  BOOST_TEST(machine.size() == 0u);
}

BOOST_AUTO_TEST_CASE(out_of_order_apply_is_a_bug) {
  kv_state_machine machine;
  BOOST_CHECK_THROW(machine.apply(command_entry(2, kv_op::set, "a", "1")), std::logic_error);
  machine.apply(command_entry(1, kv_op::set, "a", "1"));
  BOOST_CHECK_THROW(machine.apply(command_entry(1, kv_op::set, "a", "1")), std::logic_error);
}

BOOST_AUTO_TEST_CASE(duplicates_are_applied_once) {
  kv_state_machine machine(10);
  using effect = kv_state_machine::apply_effect;
  BOOST_TEST((machine.apply(command_entry(1, kv_op::set, "a", "1", 7, 1)) == effect::applied));
  BOOST_TEST((machine.apply(command_entry(2, kv_op::set, "a", "2", 7, 2)) == effect::applied));
  BOOST_TEST((machine.apply(command_entry(3, kv_op::set, "a", "1", 7, 1)) == effect::duplicate));
  BOOST_TEST(machine.get("a").value() == "2");
  BOOST_TEST(machine.duplicates_skipped() == 1u);
  // Client 0 opts out of deduplication.
  BOOST_TEST((machine.apply(command_entry(4, kv_op::set, "b", "x")) == effect::applied));
  BOOST_TEST((machine.apply(command_entry(5, kv_op::set, "b", "y")) == effect::applied));
  // Beyond the window the id is forgotten, identically on every replica.
  for (uint64_t i = 6; i <= 20; ++i)
    machine.apply(log_entry{1, i, entry_kind::noop, {}});
  BOOST_TEST((machine.apply(command_entry(21, kv_op::set, "a", "1", 7, 1)) == effect::applied));
}

BOOST_AUTO_TEST_CASE(malformed_payload_is_skipped) {
  kv_state_machine machine;
  machine.apply(log_entry{1, 1, entry_kind::command, "\x01\x09garbage"});
  BOOST_TEST(machine.malformed_skipped() == 1u);
  BOOST_TEST(machine.last_applied() == 1u);
}

BOOST_AUTO_TEST_CASE(a_frozen_image_does_not_see_later_writes) {
  kv_state_machine machine;
  for (uint64_t i = 1; i <= 1000; ++i)
    machine.apply(command_entry(i, kv_op::set, "k" + std::to_string(i), "v1"));
  auto image = machine.freeze();
  for (uint64_t i = 1; i <= 1000; ++i)
    machine.apply(command_entry(1000 + i, kv_op::set, "k" + std::to_string(i), "v2"));
  machine.apply(command_entry(2001, kv_op::del, "k1", ""));
  BOOST_TEST(image.size == 1000u);
  BOOST_TEST(image.last_applied == 1000u);
  size_t seen = 0;
  for (const auto& shard : image.shards)
    shard->for_each([&](std::string_view, std::string_view value) {
      BOOST_TEST(value == "v1");
      ++seen;
    });
  BOOST_TEST(seen == 1000u);
  BOOST_TEST(machine.get("k2").value() == "v2");
  BOOST_TEST(!machine.get("k1"));
  BOOST_TEST(machine.size() == 999u);
}

namespace {

std::string body_of(const kv_state_machine::image& image, size_t piece = 64) {
  std::string body;
  kv_state_machine::serialize(
      image, [&](std::string_view bytes) { body.append(bytes); }, piece);
  return body;
}

} // namespace

// Replicas that applied the same prefix write the same snapshot bytes, whatever the history of
// their hash tables (here: one of them deleted and re-inserted keys, which reorders buckets).
BOOST_AUTO_TEST_CASE(images_serialize_to_the_same_bytes_on_every_replica) {
  kv_state_machine a;
  kv_state_machine b;
  uint64_t index = 0;
  for (int i = 0; i < 500; ++i) {
    ++index;
    a.apply(command_entry(index, kv_op::set, "k" + std::to_string(i), "v" + std::to_string(i)));
    b.apply(command_entry(index, kv_op::set, "k" + std::to_string(i), "v" + std::to_string(i)));
  }
  BOOST_TEST(body_of(a.freeze()) == body_of(b.freeze()));
  kv_state_machine c;
  index = 0;
  for (int i = 499; i >= 0; --i) // another order of the same writes: same map, same bytes
    c.apply(command_entry(++index, kv_op::set, "k" + std::to_string(i), "v" + std::to_string(i)));
  auto image_c = c.freeze();
  auto image_a = a.freeze();
  image_c.last_applied_term = image_a.last_applied_term;
  BOOST_TEST(body_of(image_a) == body_of(image_c));
}

BOOST_AUTO_TEST_CASE(a_restored_machine_continues_where_the_image_was_taken) {
  kv_state_machine machine(1000);
  uint64_t index = 0;
  for (int i = 0; i < 300; ++i)
    machine.apply(command_entry(++index, kv_op::set, "k" + std::to_string(i % 100),
                                std::string(i % 7, 'x') + std::to_string(i), 9, i + 1));
  machine.apply(log_entry{2, ++index, entry_kind::config, "a=raft-a\n"});
  machine.apply(command_entry(++index, kv_op::del, "k5", ""));
  auto image = machine.freeze();
  auto body = body_of(image, 100);
  for (size_t piece : {size_t{1}, size_t{7}, body.size()}) {
    kv_state_machine::restorer restorer;
    for (size_t at = 0; at < body.size(); at += piece)
      restorer.feed(std::string_view(body).substr(at, piece));
    auto restored = restorer.finish();
    BOOST_TEST(restored.last_applied() == machine.last_applied());
    BOOST_TEST(restored.last_applied_term() == machine.last_applied_term());
    BOOST_TEST(restored.config() == machine.config());
    BOOST_TEST(restored.config_index() == machine.config_index());
    BOOST_TEST(restored.size() == machine.size());
    BOOST_TEST(restored.data_bytes() == machine.data_bytes());
    for (int i = 0; i < 100; ++i)
      BOOST_TEST((restored.get("k" + std::to_string(i)) == machine.get("k" + std::to_string(i))));
    // The deduplication table came along: a retried command is still recognised.
    using effect = kv_state_machine::apply_effect;
    BOOST_TEST((restored.apply(command_entry(index + 1, kv_op::set, "k1", "again", 9, 300)) ==
                effect::duplicate));
    BOOST_TEST(body_of(restored.freeze()) != body); // it moved on
  }
}

namespace {

/// A history with every kind of change: sets of new keys, overwrites of the same and of other
/// lengths, deletes, empty and binary keys and values, deduplicated and plain commands, a
/// configuration entry. Its snapshot body was recorded with the std::unordered_map layout.
kv_state_machine golden_history() {
  kv_state_machine machine(500);
  uint64_t index = 0;
  for (int i = 0; i < 3000; ++i) {
    auto key = "key" + std::to_string(i * 7919 % 2000);
    std::string value(i % 5 == 0 ? i % 300 : 100, static_cast<char>(i % 256));
    if (i % 11 == 0)
      machine.apply(command_entry(++index, kv_op::del, key, "", 3, i + 1));
    else
      machine.apply(command_entry(++index, kv_op::set, key, value, i % 3 == 0 ? 0 : 5, i + 1));
  }
  machine.apply(command_entry(++index, kv_op::set, "", "empty key"));
  machine.apply(command_entry(++index, kv_op::set, "empty value", ""));
  machine.apply(command_entry(++index, kv_op::set, std::string("\0\xff", 2), std::string("\0", 1)));
  machine.apply(log_entry{4, ++index, entry_kind::config, "a=raft-a\nb=raft-b\n"});
  return machine;
}

uint64_t fnv1a_of(std::string_view bytes) {
  uint64_t hash = 0xCBF29CE484222325ULL;
  for (unsigned char c : bytes)
    hash = (hash ^ c) * 0x100000001B3ULL;
  return hash;
}

} // namespace

// The layout of the shards is not part of the format: the body is byte for byte what the
// std::unordered_map layout wrote (IKV1), and it restores to a machine that writes it again.
BOOST_AUTO_TEST_CASE(the_snapshot_body_is_unchanged_by_the_layout) {
  auto machine = golden_history();
  BOOST_TEST(machine.size() == 1821u);
  BOOST_TEST(machine.data_bytes() == 212466u);
  auto body = body_of(machine.freeze(), 100);
  BOOST_TEST(body.size() == 218347u);
  BOOST_TEST(fnv1a_of(body) == 0xa068045eaf9e215aULL);
  kv_state_machine::restorer restorer;
  restorer.feed(body);
  auto restored = restorer.finish();
  BOOST_TEST(restored.size() == machine.size());
  BOOST_TEST(restored.data_bytes() == machine.data_bytes());
  BOOST_TEST(body_of(restored.freeze(), 100) == body);
  BOOST_TEST(restored.get("").value() == "empty key");
  BOOST_TEST(restored.get("empty value").value() == "");
  BOOST_TEST(restored.get(std::string("\0\xff", 2)).value() == std::string("\0", 1));
}

BOOST_AUTO_TEST_CASE(malformed_bodies_are_refused_with_a_reason) {
  kv_state_machine machine;
  machine.apply(command_entry(1, kv_op::set, "a", "1"));
  auto body = body_of(machine.freeze());
  auto restore = [](std::string bytes) {
    kv_state_machine::restorer restorer;
    restorer.feed(bytes);
    return restorer.finish();
  };
  BOOST_CHECK_THROW(restore(body.substr(0, body.size() - 1)), std::runtime_error);
  BOOST_CHECK_THROW(restore(body + "x"), std::runtime_error);
  BOOST_CHECK_THROW(restore("XXXX" + body.substr(4)), std::runtime_error);
  BOOST_CHECK_NO_THROW(restore(body));
}

BOOST_AUTO_TEST_SUITE_END()

// -- the compact shard (issue 13)
// --------------------------------------------------------------------

namespace {

using reference_map = std::map<std::string, std::string>;

/// Every pair of `shard` in sorted order, checked against `expected` (and find() of each key).
void check_shard(const kv_shard& shard, const reference_map& expected) {
  BOOST_TEST(shard.size() == expected.size());
  std::vector<std::pair<std::string, std::string>> sorted;
  shard.for_each_sorted([&](std::string_view key, std::string_view value) {
    sorted.emplace_back(std::string(key), std::string(value));
  });
  BOOST_TEST(sorted.size() == expected.size());
  std::vector<std::pair<std::string, std::string>> want(expected.begin(), expected.end());
  BOOST_TEST((sorted == want));
  size_t unsorted = 0;
  shard.for_each([&](std::string_view key, std::string_view value) {
    ++unsorted;
    auto it = expected.find(std::string(key));
    BOOST_TEST((it != expected.end() && it->second == value));
  });
  BOOST_TEST(unsorted == expected.size());
  for (const auto& [key, value] : expected) {
    auto found = shard.find(key);
    BOOST_TEST((found && *found == value));
  }
}

} // namespace

BOOST_AUTO_TEST_SUITE(kv_shard_tests)

BOOST_AUTO_TEST_CASE(insert_overwrite_erase) {
  kv_shard shard;
  BOOST_TEST(shard.empty());
  BOOST_TEST(!shard.find("a"));
  BOOST_TEST(!shard.erase("a"));
  auto r = shard.insert_or_assign("a", "1");
  BOOST_TEST(r.inserted);
  BOOST_TEST(shard.find("a").value() == "1");
  r = shard.insert_or_assign("a", "2"); // same length: in place
  BOOST_TEST(!r.inserted);
  BOOST_TEST(r.old_value_size == 1u);
  BOOST_TEST(shard.garbage_bytes() == 0u);
  BOOST_TEST(shard.find("a").value() == "2");
  r = shard.insert_or_assign("a", "three"); // another length: a new record
  BOOST_TEST(!r.inserted);
  BOOST_TEST(r.old_value_size == 1u);
  BOOST_TEST(shard.find("a").value() == "three");
  BOOST_TEST(shard.garbage_bytes() > 0u);
  shard.insert_or_assign("b", "x");
  BOOST_TEST(shard.size() == 2u);
  BOOST_TEST(shard.erase("a").value() == 6u); // key and value bytes
  BOOST_TEST(!shard.find("a"));
  BOOST_TEST(shard.find("b").value() == "x");
  BOOST_TEST(!shard.erase("a"));
  BOOST_TEST(shard.erase("b").value() == 2u);
  BOOST_TEST(shard.empty());
  BOOST_TEST(shard.memory_bytes() == 0u); // an emptied shard gives its memory back
  shard.insert_or_assign("a", "again");
  check_shard(shard, {{"a", "again"}});
}

BOOST_AUTO_TEST_CASE(empty_keys_values_and_binary_bytes) {
  kv_shard shard;
  reference_map expected;
  auto set = [&](std::string key, std::string value) {
    shard.insert_or_assign(key, value);
    expected[key] = value;
  };
  set("", "");
  set("empty", "");
  set("", "value of the empty key"); // overwrite of the empty key
  set(std::string("\0\0", 2), std::string("\0\xff\0", 3));
  set(std::string("\0", 1), "nul");
  set("\xff\xfe", std::string(1, '\0'));
  set(std::string(200, '\x80'), std::string(300, '\x7f'));  // two-byte length prefixes
  set(std::string(20000, 'k'), std::string(70000, '\x01')); // three-byte length prefixes
  check_shard(shard, expected);
  // Byte order is unsigned: 0xff sorts after every ASCII key.
  std::string last;
  shard.for_each_sorted([&](std::string_view key, std::string_view) { last = std::string(key); });
  BOOST_TEST(last == "\xff\xfe");
  BOOST_TEST(shard.erase("").value() == 22u);
  expected.erase("");
  BOOST_TEST(shard.erase(std::string("\0", 1)).value() == 4u);
  expected.erase(std::string("\0", 1));
  check_shard(shard, expected);
}

// Random operations against std::map: growth of the table and the arena, overwrites of the same
// and of other lengths, erases (backward shifts), compactions.
BOOST_AUTO_TEST_CASE(many_keys_against_a_reference) {
  std::mt19937_64 random(13);
  kv_shard shard;
  reference_map expected;
  for (int step = 0; step < 200000; ++step) {
    auto key = "key" + std::to_string(random() % 20000);
    auto action = random() % 10;
    if (action < 6) {
      std::string value(random() % 4 == 0 ? random() % 300 : 100,
                        static_cast<char>('a' + step % 26));
      auto r = shard.insert_or_assign(key, value);
      auto it = expected.find(key);
      BOOST_TEST(r.inserted == (it == expected.end()));
      if (it != expected.end())
        BOOST_TEST(r.old_value_size == it->second.size());
      expected[key] = value;
    } else if (action < 9) {
      auto erased = shard.erase(key);
      auto it = expected.find(key);
      BOOST_TEST(erased.has_value() == (it != expected.end()));
      if (it != expected.end()) {
        BOOST_TEST(*erased == key.size() + it->second.size());
        expected.erase(it);
      }
    } else {
      auto found = shard.find(key);
      auto it = expected.find(key);
      BOOST_TEST(found.has_value() == (it != expected.end()));
      if (found && it != expected.end())
        BOOST_TEST(*found == it->second);
    }
    if (step % 50000 == 0)
      check_shard(shard, expected);
  }
  check_shard(shard, expected);
  // Garbage is compacted: the arena stays within a small factor of the live bytes.
  size_t live = 0;
  for (const auto& [key, value] : expected)
    live += key.size() + value.size() + 4;
  BOOST_TEST(shard.memory_bytes() < 3 * live + 65536);
}

BOOST_AUTO_TEST_CASE(a_hundred_thousand_keys) {
  kv_shard shard;
  for (int i = 0; i < 100000; ++i)
    shard.insert_or_assign("k" + std::to_string(i), std::string(100, 'v'));
  BOOST_TEST(shard.size() == 100000u);
  for (int i = 0; i < 100000; i += 7)
    BOOST_TEST(shard.find("k" + std::to_string(i)).value() == std::string(100, 'v'));
  BOOST_TEST(!shard.find("k100000"));
  // About 108 bytes of record and at most 21 of table per key, plus the arena's headroom.
  BOOST_TEST(shard.memory_bytes() < 100000u * 200);
  std::string previous;
  size_t seen = 0;
  shard.for_each_sorted([&](std::string_view key, std::string_view) {
    if (seen++ > 0)
      BOOST_TEST((previous < key));
    previous = std::string(key);
  });
  BOOST_TEST(seen == 100000u);
  for (int i = 0; i < 100000; ++i)
    BOOST_TEST(shard.erase("k" + std::to_string(i)).has_value());
  BOOST_TEST(shard.empty());
}

BOOST_AUTO_TEST_CASE(copies_are_independent) {
  kv_shard original;
  reference_map expected;
  for (int i = 0; i < 1000; ++i) {
    original.insert_or_assign("k" + std::to_string(i), "v" + std::to_string(i));
    expected["k" + std::to_string(i)] = "v" + std::to_string(i);
  }
  kv_shard copy(original);
  copy.insert_or_assign("k1", "changed in the copy");
  copy.insert_or_assign("k2", "v9"); // same length: in place, in the copy's arena only
  copy.erase("k3");
  copy.insert_or_assign("new", "x");
  check_shard(original, expected);
  auto changed = expected;
  changed["k1"] = "changed in the copy";
  changed["k2"] = "v9";
  changed.erase("k3");
  changed["new"] = "x";
  check_shard(copy, changed);
  kv_shard assigned;
  assigned.insert_or_assign("gone", "soon");
  assigned = copy;
  check_shard(assigned, changed);
  kv_shard moved(std::move(assigned));
  check_shard(moved, changed);
  BOOST_TEST(assigned.empty()); // NOLINT(bugprone-use-after-move): a moved-from shard is empty
  assigned = std::move(moved);
  check_shard(assigned, changed);
  kv_shard empty_copy{kv_shard{}};
  BOOST_TEST(empty_copy.empty());
  BOOST_TEST(!empty_copy.find(""));
}

BOOST_AUTO_TEST_CASE(a_view_into_the_shard_can_be_written_back) {
  kv_shard shard;
  for (int i = 0; i < 100; ++i)
    shard.insert_or_assign("k" + std::to_string(i), std::string(50, 'a' + i % 26));
  // The value found for k1 is a view into the arena; writing it under other keys (which grows
  // the arena) must copy it first.
  for (int i = 0; i < 100; ++i) {
    auto value = shard.find("k1").value();
    shard.insert_or_assign("copy" + std::to_string(i), value);
  }
  BOOST_TEST(shard.find("copy99").value() == std::string(50, 'b'));
  shard.insert_or_assign("k2", shard.find("k2").value().substr(0, 10));
  BOOST_TEST(shard.find("k2").value() == std::string(10, 'c'));
}

BOOST_AUTO_TEST_SUITE_END()

// -- the deduplication window (issue 13)
// -------------------------------------------------------------

BOOST_AUTO_TEST_SUITE(command_id_window_tests)

BOOST_AUTO_TEST_CASE(insert_contains_expire_in_order) {
  command_id_window window;
  BOOST_TEST(!window.contains(1, 1));
  BOOST_TEST(window.insert(1, 7, 1));
  BOOST_TEST(window.insert(2, 7, 2));
  BOOST_TEST(!window.insert(3, 7, 1)); // already there
  BOOST_TEST(window.insert(3, 8, 1));
  BOOST_TEST(window.size() == 3u);
  BOOST_TEST(window.contains(7, 2));
  BOOST_TEST(window.front().index == 1u);
  window.pop_front();
  BOOST_TEST(!window.contains(7, 1));
  BOOST_TEST(window.contains(7, 2));
  BOOST_TEST(window.insert(4, 7, 1)); // forgotten, so new again
  std::vector<uint64_t> order;
  window.for_each([&](const command_id_window::item& i) { order.push_back(i.index); });
  BOOST_TEST((order == std::vector<uint64_t>{2, 3, 4}));
}

// A sliding window of ids against std::set + std::deque, across ring growth and wrap-around.
BOOST_AUTO_TEST_CASE(sliding_window_against_a_reference) {
  std::mt19937_64 random(42);
  command_id_window window;
  std::set<std::pair<uint64_t, uint64_t>> ids;
  std::deque<command_id_window::item> items;
  for (uint64_t index = 1; index <= 300000; ++index) {
    // Window size wanders between 0 and about 5,000 so the ring grows, wraps and drains.
    size_t keep = (index / 20000) % 2 == 0 ? 5000 : index % 7;
    while (items.size() > keep) {
      BOOST_REQUIRE(window.front().index == items.front().index);
      window.pop_front();
      ids.erase({items.front().client, items.front().sequence});
      items.pop_front();
    }
    uint64_t client = random() % 50, sequence = random() % 2000;
    bool fresh = ids.insert({client, sequence}).second;
    BOOST_REQUIRE(window.insert(index, client, sequence) == fresh);
    if (fresh)
      items.push_back({index, client, sequence});
    BOOST_REQUIRE(window.size() == items.size());
    if (index % 10007 == 0) {
      size_t at = 0;
      window.for_each([&](const command_id_window::item& i) {
        BOOST_TEST((i.index == items[at].index && i.client == items[at].client &&
                    i.sequence == items[at].sequence));
        ++at;
      });
      for (const auto& [c, s] : ids)
        BOOST_TEST(window.contains(c, s));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
