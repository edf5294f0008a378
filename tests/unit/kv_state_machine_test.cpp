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

BOOST_AUTO_TEST_SUITE_END()
