#include "serving/request_limits.h"

#include <algorithm>
#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace copyforge {
namespace {

absl::Status Over(const std::string& field, int64_t value, int64_t limit, const char* unit) {
  return absl::InvalidArgumentError(
      absl::StrCat(field, " has ", value, " ", unit, ", over the limit ", limit));
}

// The bytes of the text a request brings: its prompt or its task input's fields.
int64_t PromptBytes(const v1::GenerateRequest& r) {
  int64_t bytes = static_cast<int64_t>(r.prompt().size());
  const auto add = [&bytes](const std::string& s) { bytes += static_cast<int64_t>(s.size()); };
  if (r.has_product_description()) {
    const auto& p = r.product_description();
    for (const std::string* s : {&p.title(), &p.brand(), &p.category(), &p.price()}) add(*s);
    for (const std::string& f : p.features()) add(f);
  }
  if (r.has_review()) {
    const auto& v = r.review();
    for (const std::string* s : {&v.product_title(), &v.category(), &v.business_name(),
                                 &v.business_categories(), &v.city(), &v.state()}) {
      add(*s);
    }
  }
  if (r.has_blog_post()) {
    add(r.blog_post().topic());
    for (const std::string& p : r.blog_post().products()) add(p);
  }
  return bytes;
}

}  // namespace

absl::Status CheckGenerateRequest(const v1::GenerateRequest& r, const RequestLimits& limits,
                                  int slots) {
  if (const int64_t bytes = PromptBytes(r); bytes > limits.max_prompt_bytes) {
    return Over("the prompt", bytes, limits.max_prompt_bytes, "bytes");
  }
  const auto& stop = r.stopping().stop();
  if (stop.size() > limits.max_stop_sequences) {
    return Over("stopping.stop", stop.size(), limits.max_stop_sequences, "sequences");
  }
  for (int i = 0; i < stop.size(); ++i) {
    const std::string field = absl::StrCat("stopping.stop[", i, "]");
    if (stop[i].empty()) return absl::InvalidArgumentError(absl::StrCat(field, " is empty"));
    if (static_cast<int64_t>(stop[i].size()) > limits.max_stop_bytes) {
      return Over(field, static_cast<int64_t>(stop[i].size()), limits.max_stop_bytes, "bytes");
    }
  }
  if (static_cast<int64_t>(r.request_id().size()) > limits.max_request_id_bytes) {
    return Over("request_id", static_cast<int64_t>(r.request_id().size()),
                limits.max_request_id_bytes, "bytes");
  }
  const uint32_t most =
      std::min<uint32_t>(limits.max_return_sequences, static_cast<uint32_t>(std::max(1, slots)));
  if (r.num_return_sequences() > most) {
    return Over("num_return_sequences", r.num_return_sequences(), most,
                "sequences (at most the server's KV slots)");
  }
  const v1::SamplingParams& s = r.sampling();
  for (const auto& [name, value, high] :
       {std::tuple<const char*, double, double>{"sampling.temperature", s.temperature(), 100},
        {"sampling.top_p", s.top_p(), 1},
        {"sampling.repetition_penalty", s.repetition_penalty(), 100}}) {
    if (!std::isfinite(value) || value < 0 || value > high) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " must be a finite number in [0, ", high, "], got ", value));
    }
  }
  if (s.top_k() < 0 || s.top_k() > (1 << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("sampling.top_k must be in [0, 16777216], got ", s.top_k()));
  }
  return absl::OkStatus();
}

absl::Status CheckTokenizeRequest(const v1::TokenizeRequest& r, const RequestLimits& limits) {
  if (static_cast<int64_t>(r.text().size()) > limits.max_prompt_bytes) {
    return Over("text", static_cast<int64_t>(r.text().size()), limits.max_prompt_bytes, "bytes");
  }
  return absl::OkStatus();
}

}  // namespace copyforge
