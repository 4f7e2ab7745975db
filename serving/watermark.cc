#include "serving/watermark.h"

#include <openssl/sha.h>

#include <cmath>
#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "trainer/common/file_util.h"

namespace copyforge {
namespace {

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The green threshold on the top 32 bits of the hash.
uint64_t Threshold(double gamma) {
  return static_cast<uint64_t>(std::llround(gamma * 4294967296.0));
}

// The green list after `previous`: token t is green when Green(seed, t) is under the threshold.
uint64_t SeedAfter(uint64_t key, int32_t previous) {
  return Mix(key ^ (static_cast<uint64_t>(static_cast<uint32_t>(previous)) << 1));
}
uint64_t Green(uint64_t seed, int64_t token) {
  return Mix(seed ^ static_cast<uint32_t>(token)) >> 32;
}

}  // namespace

absl::Status WatermarkConfig::Validate() const {
  if (!(gamma > 0 && gamma < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("watermark gamma must be in (0, 1), got ", gamma));
  }
  if (!(delta >= 0) || !std::isfinite(delta)) {
    return absl::InvalidArgumentError(
        absl::StrCat("watermark delta must be finite and >= 0, got ", delta));
  }
  if (!std::isfinite(z_threshold)) {
    return absl::InvalidArgumentError("watermark z threshold must be finite");
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> KeyFromSecret(const std::string& secret) {
  if (secret.empty()) return absl::InvalidArgumentError("the watermark secret is empty");
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), digest);
  uint64_t key;
  std::memcpy(&key, digest, sizeof(key));
  return key;
}

absl::StatusOr<uint64_t> KeyFromFile(const std::string& path) {
  absl::StatusOr<std::string> secret = ReadFile(path);
  if (!secret.ok()) return secret.status();
  absl::StatusOr<uint64_t> key = KeyFromSecret(*secret);
  if (!key.ok())
    return absl::InvalidArgumentError(absl::StrCat(path, ": the watermark key file is empty"));
  return key;
}

bool IsGreen(uint64_t key, double gamma, int32_t previous, int32_t token) {
  return Green(SeedAfter(key, previous), token) < Threshold(gamma);
}

absl::Status WatermarkProcessor::Process(float* logits, int64_t vocab) {
  const uint64_t seed = SeedAfter(config_.key, previous_);
  const uint64_t threshold = Threshold(config_.gamma);
  const float delta = static_cast<float>(config_.delta);
  for (int64_t i = 0; i < vocab; ++i) {
    if (Green(seed, i) < threshold) logits[i] += delta;
  }
  return absl::OkStatus();
}

WatermarkDetection DetectWatermark(const WatermarkConfig& config, absl::Span<const int32_t> ids,
                                   int32_t skip) {
  WatermarkDetection d;
  std::set<std::pair<int32_t, int32_t>> seen;
  int32_t previous = -1;
  bool has_previous = false;
  for (int32_t id : ids) {
    if (id == skip) continue;
    if (has_previous && seen.insert({previous, id}).second) {
      ++d.scored;
      d.green += IsGreen(config.key, config.gamma, previous, id);
    }
    previous = id;
    has_previous = true;
  }
  if (d.scored == 0) return d;
  const double g = config.gamma, t = static_cast<double>(d.scored);
  d.z = (static_cast<double>(d.green) - g * t) / std::sqrt(t * g * (1 - g));
  d.p_value = 0.5 * std::erfc(d.z / std::sqrt(2.0));
  d.watermarked = d.z > config.z_threshold;
  return d;
}

}  // namespace copyforge
