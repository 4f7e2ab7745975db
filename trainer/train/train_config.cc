#include "trainer/train/train_config.h"

#include <functional>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "trainer/common/yaml_util.h"
#include "trainer/device/device_name.h"

namespace copyforge {
namespace {

// Every settable key, by its YAML path, with a setter that parses a scalar YAML node.
using Setter = std::function<void(TrainConfig*, const YAML::Node&)>;

const std::map<std::string, Setter>& Keys() {
  static const auto* keys = new std::map<std::string, Setter>{
      {"model", [](TrainConfig* c, const YAML::Node& n) { c->model = n.as<std::string>(); }},
      {"init_from",
       [](TrainConfig* c, const YAML::Node& n) { c->init_from = n.as<std::string>(); }},
      {"init_seed", [](TrainConfig* c, const YAML::Node& n) { c->init_seed = n.as<uint64_t>(); }},
      {"data", [](TrainConfig* c, const YAML::Node& n) { c->data = n.as<std::string>(); }},
      {"objective",
       [](TrainConfig* c, const YAML::Node& n) { c->objective = n.as<std::string>(); }},
      {"verify_data", [](TrainConfig* c, const YAML::Node& n) { c->verify_data = n.as<bool>(); }},
      {"seq_len", [](TrainConfig* c, const YAML::Node& n) { c->seq_len = n.as<int64_t>(); }},
      {"batch_size", [](TrainConfig* c, const YAML::Node& n) { c->batch_size = n.as<int64_t>(); }},
      {"grad_accum", [](TrainConfig* c, const YAML::Node& n) { c->grad_accum = n.as<int64_t>(); }},
      {"steps", [](TrainConfig* c, const YAML::Node& n) { c->steps = n.as<int64_t>(); }},
      {"optimizer.lr", [](TrainConfig* c, const YAML::Node& n) { c->lr = n.as<double>(); }},
      {"optimizer.min_lr", [](TrainConfig* c, const YAML::Node& n) { c->min_lr = n.as<double>(); }},
      {"optimizer.warmup_steps",
       [](TrainConfig* c, const YAML::Node& n) { c->warmup_steps = n.as<int64_t>(); }},
      {"optimizer.beta1", [](TrainConfig* c, const YAML::Node& n) { c->beta1 = n.as<double>(); }},
      {"optimizer.beta2", [](TrainConfig* c, const YAML::Node& n) { c->beta2 = n.as<double>(); }},
      {"optimizer.eps", [](TrainConfig* c, const YAML::Node& n) { c->eps = n.as<double>(); }},
      {"optimizer.weight_decay",
       [](TrainConfig* c, const YAML::Node& n) { c->weight_decay = n.as<double>(); }},
      {"optimizer.grad_clip",
       [](TrainConfig* c, const YAML::Node& n) { c->grad_clip = n.as<double>(); }},
      {"eval.interval",
       [](TrainConfig* c, const YAML::Node& n) { c->eval_interval = n.as<int64_t>(); }},
      {"eval.batches",
       [](TrainConfig* c, const YAML::Node& n) { c->eval_batches = n.as<int64_t>(); }},
      {"out", [](TrainConfig* c, const YAML::Node& n) { c->out = n.as<std::string>(); }},
      {"checkpoint.interval",
       [](TrainConfig* c, const YAML::Node& n) { c->checkpoint_interval = n.as<int64_t>(); }},
      {"checkpoint.keep",
       [](TrainConfig* c, const YAML::Node& n) { c->keep_checkpoints = n.as<int64_t>(); }},
      {"resume", [](TrainConfig* c, const YAML::Node& n) { c->resume = n.as<std::string>(); }},
      {"precision",
       [](TrainConfig* c, const YAML::Node& n) { c->precision = n.as<std::string>(); }},
      {"threads", [](TrainConfig* c, const YAML::Node& n) { c->threads = n.as<int>(); }},
      {"device", [](TrainConfig* c, const YAML::Node& n) { c->device = n.as<std::string>(); }},
      {"dist.backend",
       [](TrainConfig* c, const YAML::Node& n) { c->backend = n.as<std::string>(); }},
      {"dist.bucket_mb",
       [](TrainConfig* c, const YAML::Node& n) { c->bucket_mb = n.as<double>(); }},
      {"dist.timeout_s",
       [](TrainConfig* c, const YAML::Node& n) { c->comm_timeout_s = n.as<double>(); }},
      {"seed", [](TrainConfig* c, const YAML::Node& n) { c->seed = n.as<uint64_t>(); }},
      {"log_interval",
       [](TrainConfig* c, const YAML::Node& n) { c->log_interval = n.as<int64_t>(); }},
  };
  return *keys;
}

absl::Status Apply(TrainConfig* c, const std::string& key, const YAML::Node& value,
                   const std::string& where) {
  auto it = Keys().find(key);
  if (it == Keys().end()) {
    std::vector<std::string> names;
    for (const auto& [k, s] : Keys()) names.push_back(k);
    return absl::InvalidArgumentError(
        absl::StrCat(where, "unknown key \"", key, "\" (known: ", absl::StrJoin(names, ", "), ")"));
  }
  try {
    it->second(c, value);
  } catch (const YAML::Exception&) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "key \"", key, "\" has a value of the wrong type"));
  }
  return absl::OkStatus();
}

absl::Status Walk(TrainConfig* c, const YAML::Node& node, const std::string& prefix,
                  const std::string& path) {
  for (const auto& kv : node) {
    const std::string where = absl::StrCat(path, ":", kv.first.Mark().line + 1, ": ");
    if (!kv.first.IsScalar()) {
      return absl::InvalidArgumentError(absl::StrCat(where, "a key must be a plain name"));
    }
    const std::string key = prefix + kv.first.Scalar();
    if (kv.second.IsMap()) {
      if (absl::Status st = Walk(c, kv.second, key + ".", path); !st.ok()) return st;
    } else if (absl::Status st = Apply(c, key, kv.second, where); !st.ok()) {
      return st;
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TrainConfig> TrainConfig::FromYamlFile(const std::string& path) {
  auto root = LoadYamlFile(path, "train config");
  if (!root.ok()) return root.status();
  return FromYamlNode(*root, path);
}

absl::StatusOr<TrainConfig> TrainConfig::FromYamlNode(const YAML::Node& root,
                                                      const std::string& source) {
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": expected a mapping"));
  }
  TrainConfig c;
  if (absl::Status st = Walk(&c, root, "", source); !st.ok()) return st;
  return c;
}

absl::Status TrainConfig::Set(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(absl::StrCat("--set ", assignment, ": expected key=value"));
  }
  auto value = ParseYaml(assignment.substr(eq + 1), "--set");
  if (!value.ok()) return value.status();
  return Apply(this, assignment.substr(0, eq), *value, "--set: ");
}

absl::Status TrainConfig::SetString(const std::string& assignment) {
  const size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--set-string ", assignment, ": expected key=value"));
  }
  // A scalar holding the text as it is: no YAML comment, null, quoting or flow syntax applies.
  return Apply(this, assignment.substr(0, eq), YAML::Node(assignment.substr(eq + 1)),
               "--set-string: ");
}

absl::Status TrainConfig::Validate() const {
  auto bad = [](const std::string& key, const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat(key, " ", why));
  };
  if (model.empty() == init_from.empty())
    return bad("model / init_from", "exactly one must be set");
  if (data.empty()) return bad("data", "must name a prepare output directory");
  if (objective != "pretrain" && objective != "finetune")
    return bad("objective", "must be pretrain or finetune");
  if (seq_len < 2) return bad("seq_len", "must be >= 2");
  if (batch_size < 1) return bad("batch_size", "must be >= 1");
  if (grad_accum < 1) return bad("grad_accum", "must be >= 1");
  if (steps < 1) return bad("steps", "must be >= 1");
  if (!(lr > 0)) return bad("optimizer.lr", "must be > 0");
  if (!(min_lr >= 0 && min_lr <= lr)) return bad("optimizer.min_lr", "must be in [0, lr]");
  if (warmup_steps < 0) return bad("optimizer.warmup_steps", "must be >= 0");
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    return bad("optimizer.beta1/beta2", "must be in [0, 1)");
  if (!(weight_decay >= 0)) return bad("optimizer.weight_decay", "must be >= 0");
  if (!(grad_clip >= 0)) return bad("optimizer.grad_clip", "must be >= 0");
  if (eval_interval < 0 || eval_batches < 1)
    return bad("eval", "interval must be >= 0 and batches >= 1");
  if (out.empty()) return bad("out", "must name the run directory");
  if (checkpoint_interval < 0 || keep_checkpoints < 1)
    return bad("checkpoint", "interval must be >= 0 and keep >= 1");
  if (precision != "fp32" && precision != "bf16") return bad("precision", "must be fp32 or bf16");
  if (threads < 0) return bad("threads", "must be >= 0");
  if (!ValidateDeviceName(device, "device").ok())
    return bad("device", absl::StrCat("\"", device, "\" is not auto, cpu, cuda or cuda:N"));
  if (backend != "auto" && backend != "gloo" && backend != "nccl")
    return bad("dist.backend", "must be auto, gloo or nccl");
  if (!(bucket_mb > 0)) return bad("dist.bucket_mb", "must be > 0");
  if (!(comm_timeout_s > 0)) return bad("dist.timeout_s", "must be > 0");
  if (log_interval < 1) return bad("log_interval", "must be >= 1");
  return absl::OkStatus();
}

nlohmann::ordered_json TrainConfig::ToJson() const {
  return {{"model", model},
          {"init_from", init_from},
          {"init_seed", init_seed},
          {"data", data},
          {"objective", objective},
          {"seq_len", seq_len},
          {"batch_size", batch_size},
          {"grad_accum", grad_accum},
          {"steps", steps},
          {"optimizer",
           {{"lr", lr},
            {"min_lr", min_lr},
            {"warmup_steps", warmup_steps},
            {"beta1", beta1},
            {"beta2", beta2},
            {"eps", eps},
            {"weight_decay", weight_decay},
            {"grad_clip", grad_clip}}},
          {"eval", {{"interval", eval_interval}, {"batches", eval_batches}}},
          {"checkpoint", {{"interval", checkpoint_interval}, {"keep", keep_checkpoints}}},
          {"out", out},
          {"precision", precision},
          {"device", device},
          {"threads", threads},
          {"seed", seed}};
}

}  // namespace copyforge
