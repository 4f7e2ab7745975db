// The prefix cache's index: whole-block matches along the chain of parents, exact comparison of
// tokens, reference counts that keep a prefix's earlier blocks while later ones are cached, and
// least-recently-used eviction under the block budget.
#include "serving/prefix_cache.h"

#include <gtest/gtest.h>

#include <numeric>
#include <vector>

namespace copyforge {
namespace {

std::vector<int32_t> Range(int32_t from, int32_t n) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), from);
  return v;
}

std::vector<int32_t> Concat(std::vector<int32_t> a, const std::vector<int32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST(PrefixIndex, MatchesWholeBlocksOfTheLongestCachedPrefix) {
  PrefixIndex index(4, 16);
  const std::vector<int32_t> prompt = Range(100, 10);  // two whole blocks and 2 tokens
  const auto added = index.Insert(prompt);
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(added[0].index, 0);
  EXPECT_EQ(added[1].index, 1);
  EXPECT_EQ(index.cached_blocks(), 2);
  // Same first block, another second: one block matches.
  std::vector<int32_t> other = prompt;
  other[5] = 7;
  EXPECT_EQ(index.Match(other, 100), std::vector<int32_t>({added[0].id}));
  // The whole prompt again: both blocks, unless the limit cuts the second.
  EXPECT_EQ(index.Match(prompt, 100), std::vector<int32_t>({added[0].id, added[1].id}));
  EXPECT_EQ(index.Match(prompt, 7).size(), 1u);
  // The same tokens at another place in the chain are another block.
  EXPECT_TRUE(index.Match(Concat(Range(104, 4), Range(100, 4)), 100).empty());
  // Inserting again adds only what is new.
  EXPECT_TRUE(index.Insert(prompt).empty());
  const auto more = index.Insert(Concat(prompt, Range(500, 6)));  // 16 tokens: blocks 2 and 3
  ASSERT_EQ(more.size(), 2u);
  EXPECT_EQ(more[0].index, 2);
  EXPECT_EQ(index.cached_blocks(), 4);
}

TEST(PrefixIndex, EvictsTheLeastRecentlyUsedEndsOfPrefixesOnly) {
  PrefixIndex index(2, 4);
  const std::vector<int32_t> a = Range(0, 4), b = Range(10, 4);  // two blocks each
  ASSERT_EQ(index.Insert(a).size(), 2u);
  ASSERT_EQ(index.Insert(b).size(), 2u);
  EXPECT_EQ(index.Match(a, 100).size(), 2u);  // a is now more recent than b
  const std::vector<int32_t> c = Range(20, 2);
  ASSERT_EQ(index.Insert(c).size(), 1u);  // evicts b's second block (b's first is referenced)
  EXPECT_EQ(index.evictions(), 1);
  EXPECT_EQ(index.Match(a, 100).size(), 2u);
  // b's first block is now an end of a prefix, and the least recently used one.
  ASSERT_EQ(index.Insert(Range(30, 2)).size(), 1u);
  EXPECT_TRUE(index.Match(b, 100).empty());
  EXPECT_EQ(index.Match(a, 100).size(), 2u);
  EXPECT_EQ(index.Match(c, 100).size(), 1u);
  EXPECT_EQ(index.cached_blocks(), 4);
}

TEST(PrefixIndex, APrefixNeverEvictsItsOwnParentAndStopsWhenFull) {
  PrefixIndex index(1, 2);
  // Block 0 is an unreferenced end when its child needs room: the child must not take its place.
  const auto added = index.Insert(Range(0, 3));
  ASSERT_EQ(added.size(), 2u);
  EXPECT_EQ(index.Match(Range(0, 3), 100).size(), 2u);
  // Every block is referenced by the chain being inserted: nothing is placed, nothing breaks.
  PrefixIndex tiny(1, 1);
  ASSERT_EQ(tiny.Insert(Range(0, 3)).size(), 1u);
  EXPECT_EQ(tiny.Match(Range(0, 3), 100).size(), 1u);
}

TEST(PrefixIndex, ClearForgetsEverything) {
  PrefixIndex index(2, 8);
  index.Insert(Range(0, 8));
  index.Clear();
  EXPECT_EQ(index.cached_blocks(), 0);
  EXPECT_TRUE(index.Match(Range(0, 8), 100).empty());
  EXPECT_EQ(index.Insert(Range(0, 8)).size(), 4u);
}

TEST(PrefixIndex, ManyRandomPromptsKeepTheIndexConsistent) {
  PrefixIndex index(2, 32);
  uint32_t state = 12345;
  const auto next = [&] { return state = state * 1664525u + 1013904223u; };
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 500; ++i) {
    std::vector<int32_t> p;
    const int shared = static_cast<int>(next() % 4);  // one of four templates
    for (int t = 0; t < 6; ++t) p.push_back(shared * 100 + t);
    for (int t = 0, n = static_cast<int>(next() % 8); t < n; ++t) {
      p.push_back(static_cast<int32_t>(next() % 5));
    }
    index.Insert(p);
    ASSERT_LE(index.cached_blocks(), 32);
    // What matches is always a true prefix in whole blocks.
    const auto chain = index.Match(p, 100);
    EXPECT_GE(chain.size(), 1u);
  }
}

}  // namespace
}  // namespace copyforge
