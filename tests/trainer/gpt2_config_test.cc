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

// Whatever a config.json holds is an error naming the field, never an exception (a serving
// process loading it must not abort).
TEST(Gpt2Config, UnexpectedHfJsonValuesAreNamedNotThrown) {
  const std::string base = R"("n_layer": 2, "n_head": 2, "n_embd": 64)";
  for (const auto& [extra, field] : std::vector<std::pair<std::string, std::string>>{
           {R"("scale_attn_by_inverse_layer_idx": "yes")", "scale_attn_by_inverse_layer_idx"},
           {R"("reorder_and_upcast_attn": true)", "reorder_and_upcast_attn"},
           {R"("reorder_and_upcast_attn": [1])", "reorder_and_upcast_attn"},
           {R"("scale_attn_weights": false)", "scale_attn_weights"},
           {R"("n_inner": 100)", "n_inner"},
           {R"("n_inner": "x")", "n_inner"},
           {R"("n_positions": 100000000000)", "n_positions"},
           {R"("vocab_size": 1e40)", "vocab_size"},
           {R"("n_layer": null)", "n_layer"},
           {R"("activation_function": 3)", "activation_function"},
           {R"("layer_norm_epsilon": "small")", "layer_norm_epsilon"}}) {
    const std::string json = "{" + base + ", " + extra + "}";
    absl::StatusOr<Gpt2Config> c;
    ASSERT_NO_THROW(c = Gpt2Config::FromHfJson(json, "m/config.json")) << json;
    ASSERT_FALSE(c.ok()) << json;
    EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument) << json;
    EXPECT_NE(c.status().message().find("m/config.json"), std::string_view::npos) << c.status();
    EXPECT_NE(c.status().message().find(field), std::string_view::npos) << c.status();
  }
  auto fine = Gpt2Config::FromHfJson("{" + base + R"(, "n_inner": null, "n_ctx": 1024})", "c");
  EXPECT_TRUE(fine.ok()) << fine.status();
}

}  // namespace
}  // namespace copyforge
