#include "actors/kv/command_codec.hpp"

namespace infinity {
namespace {

constexpr uint8_t command_format_version = 1;

void put_varint(std::string& out, uint64_t value) {
  while (value >= 0x80) {
    out.push_back(static_cast<char>((value & 0x7F) | 0x80));
    value >>= 7;
  }
  out.push_back(static_cast<char>(value));
}

bool get_varint(std::string_view& in, uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty())
      return false;
    auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<uint64_t>(byte & 0x7F) << shift;
    if ((byte & 0x80) == 0)
      return true;
  }
  return false;
}

void put_bytes(std::string& out, const std::string& bytes) {
  put_varint(out, bytes.size());
  out += bytes;
}

bool get_bytes(std::string_view& in, std::string& bytes) {
  uint64_t size = 0;
  if (!get_varint(in, size) || size > in.size())
    return false;
  bytes.assign(in.data(), size);
  in.remove_prefix(size);
  return true;
}

} // namespace

std::string encode_command(const kv_command& command) {
  std::string out;
  out.reserve(command.key.size() + command.value.size() + 24);
  out.push_back(static_cast<char>(command_format_version));
  out.push_back(static_cast<char>(command.op));
  put_bytes(out, command.key);
  put_bytes(out, command.value);
  put_varint(out, command.client_id);
  put_varint(out, command.sequence);
  return out;
}

bool decode_command(std::string_view bytes, kv_command& out) {
  if (bytes.size() < 2 || static_cast<uint8_t>(bytes[0]) != command_format_version)
    return false;
  auto op = static_cast<uint8_t>(bytes[1]);
  if (op != static_cast<uint8_t>(kv_op::set) && op != static_cast<uint8_t>(kv_op::del))
    return false;
  out.op = static_cast<kv_op>(op);
  bytes.remove_prefix(2);
  return get_bytes(bytes, out.key) && get_bytes(bytes, out.value) &&
         get_varint(bytes, out.client_id) && get_varint(bytes, out.sequence) && bytes.empty();
}

} // namespace infinity
