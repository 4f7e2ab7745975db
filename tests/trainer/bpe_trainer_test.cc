#include "trainer/tokenizer/bpe_trainer.h"

#include <gtest/gtest.h>

#include "trainer/tokenizer/tokenizer.h"

namespace copyforge {
namespace {

const char kCorpus[] =
    "This blender is great. The blender crushes ice well and the lid seals tight.\n"
    "Great blender for smoothies! I'd buy this blender again.<|endoftext|>"
    "The coffee maker is great too: the coffee is hot and the carafe doesn't drip.\n";

BpeTrainerResult TrainOn(const std::string& text, int32_t vocab_size) {
  BpeTrainer trainer(BpeTrainerOptions().set_vocab_size(vocab_size).set_show_progress(false));
  EXPECT_TRUE(trainer.Add(text).ok());
  auto r = trainer.Train();
  EXPECT_TRUE(r.ok()) << r.status();
  return *r;
}

TEST(BpeTrainer, LearnsFrequentMergesAndLoads) {
  BpeTrainerResult r = TrainOn(std::string(kCorpus) + kCorpus, 300);
  EXPECT_EQ(r.vocab_size, 300);
  EXPECT_EQ(r.num_merges, 300 - 256 - 1);
  auto tok = Tokenizer::FromContents(r.vocab_json, r.merges_txt, "trained");
  ASSERT_TRUE(tok.ok()) << tok.status();
  EXPECT_EQ((*tok)->eot_id(), 299);
  // " blender" is frequent, so it must become a single token.
  EXPECT_EQ((*tok)->Encode(" blender").size(), 1u);
  const std::string text = "A new blender, never seen: zebra!";
  EXPECT_EQ(*(*tok)->Decode((*tok)->Encode(text)), text);
  EXPECT_EQ((*tok)->Encode("x<|endoftext|>y").size(), 3u);
}

TEST(BpeTrainer, Deterministic) {
  BpeTrainerResult a = TrainOn(kCorpus, 290);
  BpeTrainerResult b = TrainOn(kCorpus, 290);
  EXPECT_EQ(a.vocab_json, b.vocab_json);
  EXPECT_EQ(a.merges_txt, b.merges_txt);
}

TEST(BpeTrainer, FirstMergeIsTheMostFrequentPair) {
  BpeTrainerResult r = TrainOn("aaaa bbb aaaa bbb aaaa", 258);
  // (a, a) is counted 9 times (three per "aaaa"), more than any other pair.
  EXPECT_EQ(r.merges_txt, "#version: 0.2\na a\n");
}

TEST(BpeTrainer, RejectsTooSmallVocab) {
  BpeTrainer trainer(BpeTrainerOptions().set_vocab_size(100).set_show_progress(false));
  auto r = trainer.Train();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("vocab_size"), std::string_view::npos);
}

}  // namespace
}  // namespace copyforge
