// Binary encoding of a `kv_command` inside a log entry's `data`.
//
// Stable on disk and on the wire: version byte, op byte, then varint-prefixed fields. Decoding
// never trusts lengths: a malformed payload is rejected, never read past its end.
#pragma once

#include <string>
#include <string_view>

#include "actors/types.hpp"

namespace infinity {

std::string encode_command(const kv_command& command);

/// Returns false (leaving `out` unspecified) when `bytes` is not a valid encoding.
bool decode_command(std::string_view bytes, kv_command& out);

} // namespace infinity
