#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

namespace enclave::engine {
namespace {

// Feeds `pieces` one by one; returns everything released and whether a stop string hit.
std::pair<std::string, bool> feed(StopMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  bool any_hit = false;
  for (const auto& p : pieces) {
    bool hit = false;
    out += m.push(p, &hit);
    any_hit = any_hit || hit;
  }
  if (!any_hit) out += m.flush();
  return {out, any_hit};
}

TEST(StopMatcher, NoStopsPassesEverythingThrough) {
  StopMatcher m(std::vector<std::string>{});
  bool hit = true;
  EXPECT_EQ(m.push("abc", &hit), "abc");
  EXPECT_FALSE(hit);
  EXPECT_EQ(m.flush(), "");
}

TEST(StopMatcher, CutsBeforeStopSpanningPieces) {
  StopMatcher m({"STOP"});
  auto [out, hit] = feed(m, {"hello S", "TO", "P world"});
  EXPECT_TRUE(hit);
  EXPECT_EQ(out, "hello ");
  bool h2 = false;
  EXPECT_EQ(m.push("more", &h2), "");  // nothing after a hit
}

TEST(StopMatcher, HoldsBackOnlyPossiblePrefixes) {
  StopMatcher m({"</end>"});
  bool hit = false;
  EXPECT_EQ(m.push("a</e", &hit), "a");  // "</e" could start the stop string
  EXPECT_EQ(m.push("x", &hit), "</ex");  // it did not
  EXPECT_FALSE(hit);
  EXPECT_EQ(m.push("<", &hit), "");
  EXPECT_EQ(m.flush(), "<");  // end of stream releases held text
}

TEST(StopMatcher, EarliestOfSeveralStopsWins) {
  StopMatcher m({"world", "lo"});
  auto [out, hit] = feed(m, {"hello world"});
  EXPECT_TRUE(hit);
  EXPECT_EQ(out, "hel");
}

TEST(StopMatcher, StopAtVeryStartGivesEmptyText) {
  StopMatcher m({"\n\n"});
  auto [out, hit] = feed(m, {"\n", "\nrest"});
  EXPECT_TRUE(hit);
  EXPECT_EQ(out, "");
}

TEST(StopMatcher, MultibyteStopString) {
  StopMatcher m({"世界"});
  auto [out, hit] = feed(m, {"你好", "世", "界!"});
  EXPECT_TRUE(hit);
  EXPECT_EQ(out, "你好");
}

TEST(StopMatcher, EmptyStopStringsAreIgnored) {
  StopMatcher m({""});
  auto [out, hit] = feed(m, {"abc"});
  EXPECT_FALSE(hit);
  EXPECT_EQ(out, "abc");
}

}  // namespace
}  // namespace enclave::engine
