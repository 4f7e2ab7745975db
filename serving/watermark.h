// The green-list watermark of Kirchenbauer et al. (2023), "A Watermark for Large Language
// Models": before each draw, a pseudo-random fraction `gamma` of the vocabulary, chosen by a
// keyed hash of the previous token, is "green" and gets `delta` added to its logits. Text
// written that way holds far more green tokens than chance; a detector with the key counts them
// and reports a z-score, without the model. The green list of a token depends only on the key
// and its predecessor, so a watermarked row does not depend on the rest of the batch, like the
// engine's seeded sampling.
#ifndef COPYFORGE_SERVING_WATERMARK_H_
#define COPYFORGE_SERVING_WATERMARK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "serving/logits_processor.h"

namespace copyforge {

struct WatermarkConfig {
  uint64_t key = 0;          // from the server's secret (KeyFromSecret)
  double gamma = 0.25;       // the green fraction of the vocabulary
  double delta = 2.0;        // added to green logits
  double z_threshold = 4.0;  // detection: a z-score above this says "watermarked"

  absl::Status Validate() const;  // names the offending parameter
};

// A 64-bit key from secret bytes (SHA-256, first 8 bytes); errors on an empty secret.
absl::StatusOr<uint64_t> KeyFromSecret(const std::string& secret);
// Reads a key file (the whole file is the secret); the error names the file.
absl::StatusOr<uint64_t> KeyFromFile(const std::string& path);

// Whether `token` is green after `previous` under `key`.
bool IsGreen(uint64_t key, double gamma, int32_t previous, int32_t token);

class WatermarkProcessor : public LogitsProcessor {
 public:
  // `previous`: the last prompt token (the first generated token's predecessor).
  WatermarkProcessor(const WatermarkConfig& config, int32_t previous)
      : config_(config), previous_(previous) {}
  absl::Status Process(float* logits, int64_t vocab) override;
  absl::Status Accept(int32_t token) override {
    previous_ = token;
    return absl::OkStatus();
  }

 private:
  WatermarkConfig config_;
  int32_t previous_;
};

struct WatermarkDetection {
  int64_t scored = 0;  // tokens counted (each distinct (previous, token) pair once)
  int64_t green = 0;
  double z = 0;        // (green - gamma * scored) / sqrt(scored * gamma * (1 - gamma))
  double p_value = 1;  // one-sided, under the normal approximation
  bool watermarked = false;
};

// Scores `ids` (the first token has no predecessor and is not scored; `skip` ids, e.g. the end
// of text, neither count nor serve as predecessors).
WatermarkDetection DetectWatermark(const WatermarkConfig& config, absl::Span<const int32_t> ids,
                                   int32_t skip = -1);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_WATERMARK_H_
