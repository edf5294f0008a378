// The local read view under concurrency: HTTP sessions read it on their own threads while the KV
// actor applies entries, freezes snapshot images (copy on write of the shards) and replaces the
// whole machine. Run under AddressSanitizer in CI, a read racing a shard's copy or a replaced
// machine shows up as a use after free; here every read must see a whole value that some write
// stored.
#define BOOST_TEST_MODULE local_read_view
#include <boost/test/unit_test.hpp>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/kv/command_codec.hpp"
#include "actors/kv/local_read_view.hpp"
#include "actors/kv/state_machine.hpp"

using namespace infinity;

namespace {

log_entry set_entry(uint64_t index, const std::string& key, const std::string& value) {
  kv_command command;
  command.key = key;
  command.value = value;
  log_entry entry;
  entry.index = index;
  entry.term = 1;
  entry.kind = entry_kind::command;
  entry.data = encode_command(command);
  return entry;
}

/// Values are one digit repeated, 1 to 200 times: a torn or freed value is unlikely to be one.
std::string value_for(uint64_t n) {
  return std::string(1 + n % 200, static_cast<char>('0' + n % 10));
}

bool well_formed(const std::string& value) {
  return !value.empty() && value.size() <= 200 &&
         value.find_first_not_of(value[0]) == std::string::npos && value[0] >= '0' &&
         value[0] <= '9';
}

} // namespace

BOOST_AUTO_TEST_CASE(reads_on_other_threads_see_whole_values_while_the_owner_writes) {
  constexpr uint64_t keys = 512;
  constexpr uint64_t writes = 200000;
  auto view = std::make_shared<local_read_view>();
  auto machine = std::make_shared<kv_state_machine>();
  view->publish(machine);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> bad{0};
  std::atomic<uint64_t> found{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r)
    readers.emplace_back([&, r] {
      uint64_t n = static_cast<uint64_t>(r);
      while (!done.load()) {
        auto value = view->get("k" + std::to_string(n++ % keys));
        if (value) {
          found.fetch_add(1);
          if (!well_formed(*value))
            bad.fetch_add(1);
        }
      }
    });
  std::vector<std::shared_ptr<const kv_state_machine::image>> images;
  uint64_t index = 0;
  for (uint64_t i = 0; i < writes; ++i) {
    machine->apply(set_entry(++index, "k" + std::to_string(i % keys), value_for(i)));
    if (i % 5000 == 4999) {
      // A snapshot image shares every shard: the next write to each copies it under its lock.
      images.push_back(std::make_shared<const kv_state_machine::image>(machine->freeze()));
      if (images.size() > 2)
        images.erase(images.begin());
    }
    if (i % 20000 == 19999) {
      // An installed snapshot: a new machine, published while readers hold the old one.
      auto next = std::make_shared<kv_state_machine>();
      uint64_t next_index = 0;
      for (uint64_t k = 0; k < keys; ++k)
        next->apply(set_entry(++next_index, "k" + std::to_string(k), value_for(k)));
      index = next_index;
      machine = next;
      view->publish(machine);
    }
  }
  done.store(true);
  for (auto& t : readers)
    t.join();
  BOOST_TEST(bad.load() == 0u);
  BOOST_TEST(found.load() > 0u);
  BOOST_TEST(view->get("k1").value_or("") == machine->get("k1").value_or("-"));
}

BOOST_AUTO_TEST_CASE(removal_is_published_to_readers) {
  local_read_view view;
  BOOST_TEST(view.removed_at_index() == 0u);
  BOOST_TEST(!view.get("anything").has_value()); // an empty machine until the KV actor publishes
  view.set_removed_at_index(12);
  BOOST_TEST(view.removed_at_index() == 12u);
}
