// Train/validation split by item name: each item's place in an order hashed from (seed, name),
// the last fraction of that order going to validation. Like train::SplitDataset it is seeded,
// exact in size and without overlap, and it also stays stable as files come and go: adding or
// removing one item moves at most one other item across the boundary.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace selene::data {

// Per name, true for validation. round(fraction * n) items go to validation; a fraction > 0
// leaves at least one item on each side when n >= 2; a single item
// always trains. fraction must be in [0, 1).
std::vector<bool> SplitByName(const std::vector<std::string>& names, double fraction,
                              uint64_t seed);

}  // namespace selene::data
