// Unit tests of the KV state machine: in-order application, set/delete semantics, duplicate
// suppression by (client, sequence) within the window, and tolerance of malformed payloads.
#include <boost/test/unit_test.hpp>

#include "actors/kv/command_codec.hpp"
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
    for (const auto& [key, value] : *shard) {
      BOOST_TEST(value == "v1");
      ++seen;
    }
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
