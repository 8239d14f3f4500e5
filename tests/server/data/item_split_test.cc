// SplitByName: exact sizes, determinism by seed, no dependence on list order, and stability when
// one item is added.
#include "server/data/item_split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

namespace selene::data {
namespace {

std::vector<std::string> Names(int n) {
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) names.push_back("images/render" + std::to_string(1000 + i) + ".png");
  return names;
}

std::set<std::string> ValSet(const std::vector<std::string>& names, const std::vector<bool>& val) {
  std::set<std::string> out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (val[i]) out.insert(names[i]);
  }
  return out;
}

TEST(SplitByNameTest, ExactSizes) {
  const auto names = Names(100);
  EXPECT_EQ(ValSet(names, SplitByName(names, 0.2, 1)).size(), 20u);
  EXPECT_EQ(ValSet(names, SplitByName(names, 0.15, 1)).size(), 15u);
  EXPECT_EQ(ValSet(names, SplitByName(names, 0.0, 1)).size(), 0u);
  // A requested validation set gets one item, and training keeps one.
  EXPECT_EQ(ValSet(Names(3), SplitByName(Names(3), 0.01, 1)).size(), 1u);
  EXPECT_EQ(ValSet(Names(2), SplitByName(Names(2), 0.9, 1)).size(), 1u);
  EXPECT_EQ(ValSet(Names(1), SplitByName(Names(1), 0.5, 1)).size(), 0u);
}

TEST(SplitByNameTest, DeterministicBySeedAndIndependentOfOrder) {
  auto names = Names(200);
  const auto a = ValSet(names, SplitByName(names, 0.25, 7));
  EXPECT_EQ(a, ValSet(names, SplitByName(names, 0.25, 7)));
  EXPECT_NE(a, ValSet(names, SplitByName(names, 0.25, 8)));
  std::reverse(names.begin(), names.end());
  EXPECT_EQ(a, ValSet(names, SplitByName(names, 0.25, 7)));
}

TEST(SplitByNameTest, AddingOneItemMovesAtMostOneOther) {
  auto names = Names(300);
  const auto before = ValSet(names, SplitByName(names, 0.2, 3));
  for (int extra = 0; extra < 20; ++extra) {
    auto more = names;
    more.push_back("images/render9" + std::to_string(extra) + ".png");
    auto after = ValSet(more, SplitByName(more, 0.2, 3));
    after.erase(more.back());
    std::vector<std::string> changed;
    std::set_symmetric_difference(before.begin(), before.end(), after.begin(), after.end(),
                                  std::back_inserter(changed));
    EXPECT_LE(changed.size(), 1u) << extra;
  }
}

}  // namespace
}  // namespace selene::data
