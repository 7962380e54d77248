// ReasoningParser: finished text and every possible chunking of a stream give the same split.
#include "tokenizer/reasoning_parser.h"

#include <gtest/gtest.h>

namespace enclave::tokenizer {
namespace {

TEST(ReasoningParser, SplitWithOpeningTag) {
  auto d = ReasoningParser::split("<think>\nLet me think.\n</think>\n\nThe answer is 2.", false);
  EXPECT_EQ(d.reasoning, "Let me think.");
  EXPECT_EQ(d.content, "The answer is 2.");
}

TEST(ReasoningParser, SplitStartingInsideReasoning) {
  auto d = ReasoningParser::split("Okay, so 1+1.\n</think>\n\n2", true);
  EXPECT_EQ(d.reasoning, "Okay, so 1+1.");
  EXPECT_EQ(d.content, "2");
}

TEST(ReasoningParser, NoReasoningWhenNoTag) {
  auto d = ReasoningParser::split("Just an answer </think> text", false);
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Just an answer </think> text");
}

TEST(ReasoningParser, UnfinishedReasoningIsAllReasoning) {
  auto d = ReasoningParser::split("<think>still going </thi", false);
  EXPECT_EQ(d.reasoning, "still going </thi");
  EXPECT_EQ(d.content, "");
}

TEST(ReasoningParser, EmptyThinkBlock) {
  auto d = ReasoningParser::split("<think>\n\n</think>\n\nHi", false);
  EXPECT_EQ(d.reasoning, "");
  EXPECT_EQ(d.content, "Hi");
}

TEST(ReasoningParser, StreamHoldsPartialTag) {
  ReasoningParser p(true);
  auto a = p.push("abc </thi");
  EXPECT_EQ(a.reasoning, "abc");
  EXPECT_EQ(a.content, "");
  auto b = p.push("nk>\nxy");
  EXPECT_EQ(b.reasoning, "");
  EXPECT_EQ(b.content, "xy");
  auto c = p.push("</think> z");
  EXPECT_EQ(c.content, "</think> z");  // after the block everything is content
}

TEST(ReasoningParser, EveryChunkingMatchesSplit) {
  const std::string texts[] = {
      "<think>\nA < B </ C\n</think>\n\nAnswer: <b>2</b>",
      "  <think>x</think>y",
      "reasoning only\n</think>",
      "<thinking is not a tag",
      "<think>\n\n</think>",
  };
  for (const auto& text : texts) {
    for (bool start : {false, true}) {
      const auto want = ReasoningParser::split(text, start);
      for (size_t chunk = 1; chunk <= 4; ++chunk) {
        ReasoningParser p(start);
        std::string r, c;
        for (size_t i = 0; i < text.size(); i += chunk) {
          auto d = p.push(std::string_view(text).substr(i, chunk));
          r += d.reasoning;
          c += d.content;
        }
        auto f = p.flush();
        r += f.reasoning;
        c += f.content;
        EXPECT_EQ(r, want.reasoning) << text << " chunk=" << chunk << " start=" << start;
        EXPECT_EQ(c, want.content) << text << " chunk=" << chunk << " start=" << start;
      }
    }
  }
}

}  // namespace
}  // namespace enclave::tokenizer
