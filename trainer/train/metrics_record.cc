#include "trainer/train/metrics_record.h"

#include "nlohmann/json.hpp"
#include "trainer/common/json_util.h"

namespace copyforge {
std::string MetricsRecord::ToJsonLine() const {
  nlohmann::ordered_json j;
  switch (kind) {
    case Kind::kStart:
      j = {{"event", "start"}, {"step", step}, {"world", world}, {"resumed_from", resumed_from}};
      break;
    case Kind::kStep:
      j = {{"step", step},
           {"loss", loss},
           {"lr", lr},
           {"grad_norm", grad_norm},
           {"tokens_per_s", tokens_per_s},
           {"mfu", mfu},
           {"elapsed_s", elapsed_s},
           {"eta_s", eta_s}};
      break;
    case Kind::kEval:
      j = {{"step", step}, {"val_loss", val_loss}, {"val_ppl", val_ppl}};
      break;
  }
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<MetricsRecord> MetricsRecord::Parse(std::string_view line) {
  const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  MetricsRecord r;
  r.step = JsonInt(j, "step", -1);
  if (r.step < 0) return std::nullopt;
  auto event = j.find("event");
  if (event != j.end() && event->is_string() && event->get<std::string>() == "start") {
    r.kind = Kind::kStart;
    r.world = static_cast<int>(JsonInt(j, "world", 1));
    auto from = j.find("resumed_from");
    if (from != j.end() && from->is_string()) r.resumed_from = from->get<std::string>();
  } else if (j.contains("val_loss")) {
    r.kind = Kind::kEval;
    r.val_loss = JsonDouble(j, "val_loss", NAN);
    r.val_ppl = JsonDouble(j, "val_ppl", NAN);
  } else if (j.contains("tokens_per_s")) {
    r.kind = Kind::kStep;
    r.loss = JsonDouble(j, "loss", NAN);
    r.lr = JsonDouble(j, "lr", NAN);
    r.grad_norm = JsonDouble(j, "grad_norm", NAN);
    r.tokens_per_s = JsonDouble(j, "tokens_per_s", NAN);
    r.mfu = JsonDouble(j, "mfu", NAN);
    r.elapsed_s = JsonDouble(j, "elapsed_s", NAN);
    r.eta_s = JsonDouble(j, "eta_s", NAN);
  } else {
    return std::nullopt;
  }
  return r;
}

}  // namespace copyforge
