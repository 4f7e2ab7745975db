#include "trainer/model/gpt2_config.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace copyforge {
namespace {

TEST(Gpt2Config, ShippedModelConfigsLoad) {
  const std::string dir = testing::Env("COPYFORGE_SOURCE_DIR") + "/configs/model/";
  auto gpt2 = Gpt2Config::FromYamlFile(dir + "gpt2-124m.yaml");
  ASSERT_TRUE(gpt2.ok()) << gpt2.status();
  EXPECT_EQ(gpt2->NumParameters(), 124439808);  // Hugging Face's "gpt2"
  for (const char* name : {"tiny.yaml", "small.yaml"}) {
    EXPECT_TRUE(Gpt2Config::FromYamlFile(dir + name).ok()) << name;
  }
}

TEST(Gpt2Config, YamlErrorsNameFileKeyAndLine) {
  testing::TempDir tmp;
  testing::WriteTestFile(tmp.File("m.yaml"), "n_layer: 2\nn_heads: 4\n");
  auto r = Gpt2Config::FromYamlFile(tmp.File("m.yaml"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("m.yaml:2"), std::string_view::npos) << r.status();
  EXPECT_NE(r.status().message().find("n_heads"), std::string_view::npos);

  testing::WriteTestFile(tmp.File("b.yaml"), "n_embd: 100\nn_head: 3\n");
  r = Gpt2Config::FromYamlFile(tmp.File("b.yaml"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("divisible"), std::string_view::npos) << r.status();

  testing::WriteTestFile(tmp.File("c.yaml"), "n_layer: two\n");
  r = Gpt2Config::FromYamlFile(tmp.File("c.yaml"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("c.yaml:1"), std::string_view::npos) << r.status();
}

TEST(Gpt2Config, HfJsonRoundTrip) {
  Gpt2Config c;
  c.n_layer = 3;
  c.n_embd = 48;
  c.n_head = 4;
  auto back = Gpt2Config::FromHfJson(c.ToHfJson(), "config.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->n_layer, 3);
  EXPECT_EQ(back->n_embd, 48);
  auto bad = Gpt2Config::FromHfJson(R"({"model_type": "llama"})", "x/config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("x/config.json: model_type"), std::string_view::npos);
}

}  // namespace
}  // namespace copyforge
