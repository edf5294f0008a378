// Round trips and rejection of malformed command encodings: decoding must never read past the
// payload or accept trailing bytes.
#include <boost/test/unit_test.hpp>

#include "actors/kv/command_codec.hpp"

using namespace infinity;

BOOST_AUTO_TEST_SUITE(command_codec_tests)

BOOST_AUTO_TEST_CASE(round_trip) {
  kv_command in{kv_op::del, std::string("k\0ey", 4), std::string(300, 'v'), 1ULL << 63, 42};
  kv_command out;
  BOOST_TEST(decode_command(encode_command(in), out));
  BOOST_TEST((out.op == in.op));
  BOOST_TEST(out.key == in.key);
  BOOST_TEST(out.value == in.value);
  BOOST_TEST(out.client_id == in.client_id);
  BOOST_TEST(out.sequence == in.sequence);
}

BOOST_AUTO_TEST_CASE(rejects_malformed) {
  kv_command out;
  auto good = encode_command(kv_command{kv_op::set, "key", "value", 1, 2});
  BOOST_TEST(!decode_command("", out));
  BOOST_TEST(!decode_command(good + "x", out));
  for (size_t n = 0; n < good.size(); ++n)
    BOOST_TEST(!decode_command(good.substr(0, n), out));
  auto bad_op = good;
  bad_op[1] = 9;
  BOOST_TEST(!decode_command(bad_op, out));
  auto bad_version = good;
  bad_version[0] = 2;
  BOOST_TEST(!decode_command(bad_version, out));
}

BOOST_AUTO_TEST_SUITE_END()
