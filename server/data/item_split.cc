#include "server/data/item_split.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace selene::data {
namespace {

uint64_t Mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint64_t NameHash(const std::string& name, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ull ^ Mix(seed);
  for (unsigned char c : name) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return Mix(h ^ Mix(seed + 1));
}

}  // namespace

std::vector<bool> SplitByName(const std::vector<std::string>& names, double fraction,
                              uint64_t seed) {
  const int64_t n = static_cast<int64_t>(names.size());
  std::vector<bool> in_val(names.size(), false);
  if (n == 0 || !(fraction > 0.0)) return in_val;
  std::vector<uint64_t> keys(names.size());
  for (size_t i = 0; i < names.size(); ++i) keys[i] = NameHash(names[i], seed);
  std::vector<size_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return keys[a] != keys[b] ? keys[a] < keys[b] : names[a] < names[b];
  });
  int64_t val = std::llround(fraction * static_cast<double>(n));
  if (n >= 2) val = std::clamp<int64_t>(val, 1, n - 1);
  // A single item trains: a validation set with nothing to train on is no use.
  val = n == 1 ? 0 : std::clamp<int64_t>(val, 0, n);
  for (int64_t k = n - val; k < n; ++k) in_val[order[k]] = true;
  return in_val;
}

}  // namespace selene::data
