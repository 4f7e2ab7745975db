// Options of `copyforge train`, from configs/train/*.yaml plus `--set key=value` overrides.
#ifndef COPYFORGE_TRAINER_TRAIN_TRAIN_CONFIG_H_
#define COPYFORGE_TRAINER_TRAIN_TRAIN_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace YAML {
class Node;
}

namespace copyforge {

struct TrainConfig {
  // Model: a model YAML for a fresh model, or a checkpoint directory to start from.
  std::string model;      // configs/model/*.yaml
  std::string init_from;  // checkpoint directory (HF GPT-2 layout)
  uint64_t init_seed = 0;

  std::string data;                    // `prepare` output directory (holds manifest.json)
  std::string objective = "pretrain";  // pretrain | finetune
  bool verify_data = true;             // check shard checksums before training

  int64_t seq_len = 256;
  int64_t batch_size = 8;  // sequences per micro-batch
  int64_t grad_accum = 1;  // micro-batches per optimizer step
  int64_t steps = 100;

  double lr = 6e-4;
  double min_lr = 6e-5;
  int64_t warmup_steps = 10;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;  // 0 disables

  int64_t eval_interval = 50;  // 0 disables periodic evaluation
  int64_t eval_batches = 8;

  std::string out;                    // run directory: checkpoints, metrics.jsonl
  int64_t checkpoint_interval = 100;  // 0: only at the end
  int64_t keep_checkpoints = 2;
  std::string resume;  // checkpoint directory with training_state to continue from ("latest" =
                       // newest in out)

  std::string precision = "fp32";  // fp32 | bf16 (autocast)
  std::string device = "auto";     // auto | cpu | cuda | cuda:N (trainer/device/device.h)
  // Data parallelism (used when the process runs as one rank of several): auto is nccl on a
  // CUDA device and gloo on the CPU.
  std::string backend = "auto";
  double bucket_mb = 25;       // gradient all-reduce bucket size
  double comm_timeout_s = 30;  // every collective fails after this long
  int threads = 0;
  uint64_t seed = 1337;
  int64_t log_interval = 1;

  // Reads YAML; errors name the file, line and key.
  static absl::StatusOr<TrainConfig> FromYamlFile(const std::string& path);
  // The same from a parsed mapping; `source` names the file in errors (lines are the node's).
  static absl::StatusOr<TrainConfig> FromYamlNode(const YAML::Node& root,
                                                  const std::string& source);
  // Applies "section.key=value" (the YAML key path) to this config; errors name the key.
  absl::Status Set(const std::string& assignment);
  // The same with the value taken verbatim as a string (for paths and names from another
  // process: "run #2" stays "run #2", "~" stays "~"); numbers and booleans are still read from
  // the text for keys of those types.
  absl::Status SetString(const std::string& assignment);
  absl::Status Validate() const;
  nlohmann::ordered_json ToJson() const;
};

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_TRAIN_TRAIN_CONFIG_H_
