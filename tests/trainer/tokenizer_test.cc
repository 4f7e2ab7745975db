#include "trainer/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/test_util.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

class Gpt2TokenizerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto t = Tokenizer::Load(testing::Env("COPYFORGE_GPT2_TOKENIZER"));
    ASSERT_TRUE(t.ok()) << t.status();
    tokenizer_ = t->release();
  }
  static void TearDownTestSuite() { delete tokenizer_; }
  static Tokenizer* tokenizer_;
};
Tokenizer* Gpt2TokenizerTest::tokenizer_ = nullptr;

TEST_F(Gpt2TokenizerTest, KnownIds) {
  EXPECT_EQ(tokenizer_->vocab_size(), 50257);
  EXPECT_EQ(tokenizer_->eot_id(), 50256);
  EXPECT_EQ(tokenizer_->Encode("Hello world"), (std::vector<int32_t>{15496, 995}));
  EXPECT_EQ(tokenizer_->Encode("<|endoftext|>"), (std::vector<int32_t>{50256}));
}

TEST_F(Gpt2TokenizerTest, SpecialTokenCanBePlainText) {
  EncodeOptions plain;
  plain.allow_special = false;
  std::vector<int32_t> ids = tokenizer_->Encode("a<|endoftext|>b", plain);
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 50256), 0);
  EXPECT_EQ(*tokenizer_->Decode(ids), "a<|endoftext|>b");
  EXPECT_EQ(tokenizer_->Encode("a<|endoftext|>b").size(), 3u);
}

TEST_F(Gpt2TokenizerTest, ArbitraryBytesRoundTrip) {
  std::mt19937 rng(7);
  for (int i = 0; i < 300; ++i) {
    std::string s(rng() % 200, '\0');
    for (char& c : s) c = static_cast<char>(rng() % 256);
    std::vector<int32_t> ids = tokenizer_->Encode(s);
    auto back = tokenizer_->Decode(ids);
    ASSERT_TRUE(back.ok());
    ASSERT_EQ(*back, s) << "case " << i;
  }
}

TEST_F(Gpt2TokenizerTest, InvalidUtf8IsEncodedByteByByte) {
  // 0xFF never occurs in UTF-8: it stays one byte token of its own, next to its neighbours.
  std::vector<int32_t> ids = tokenizer_->Encode("ok\xFF");
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(tokenizer_->TokenBytes(ids[1]), "\xFF");
}

TEST_F(Gpt2TokenizerTest, LongPiecesMatchTheirDecodedText) {
  const std::string long_word(5000, 'a');
  std::vector<int32_t> ids = tokenizer_->Encode(long_word);
  EXPECT_LT(ids.size(), 5000u);
  EXPECT_EQ(*tokenizer_->Decode(ids), long_word);
}

TEST_F(Gpt2TokenizerTest, DecodeRejectsUnknownIds) {
  auto r = tokenizer_->Decode({15496, 70000});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("70000"), std::string_view::npos);
  EXPECT_NE(r.status().message().find("position 1"), std::string_view::npos);
}

TEST(TokenizerLoad, ErrorsNameTheFileAndLine) {
  auto bad_json = Tokenizer::FromContents("not json", "", "/x");
  ASSERT_FALSE(bad_json.ok());
  EXPECT_NE(bad_json.status().message().find("/x/vocab.json"), std::string_view::npos);

  auto vocab = ReadFile(testing::Env("COPYFORGE_GPT2_TOKENIZER") + "/vocab.json");
  ASSERT_TRUE(vocab.ok());
  auto bad_merges =
      Tokenizer::FromContents(*vocab, "#version: 0.2\n\xC4\xA0 t\nthree parts here\n", "/y");
  ASSERT_FALSE(bad_merges.ok());
  EXPECT_NE(bad_merges.status().message().find("/y/merges.txt:3"), std::string_view::npos)
      << bad_merges.status();
  auto missing = Tokenizer::Load("/nonexistent/tok");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("/nonexistent/tok/vocab.json"), std::string_view::npos);
}

}  // namespace
}  // namespace copyforge
