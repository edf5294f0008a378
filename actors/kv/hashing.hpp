// The KV state machine's hash functions, shared by the shard choice, the shard tables and the
// deduplication window. FNV-1a is part of the snapshot format (it picks a key's shard on every
// replica and build alike); the finalizer only spreads bits inside in-memory tables.
#pragma once

#include <cstdint>
#include <string_view>

namespace infinity {

inline uint64_t fnv1a(std::string_view bytes) {
  uint64_t hash = 0xCBF29CE484222325ULL;
  for (unsigned char c : bytes)
    hash = (hash ^ c) * 0x100000001B3ULL;
  return hash;
}

/// murmur3's 64-bit finalizer: every input bit reaches every output bit.
inline uint64_t mix64(uint64_t h) {
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h;
}

} // namespace infinity
