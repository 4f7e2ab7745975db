#include "trainer/train/metrics_record.h"

#include "nlohmann/json.hpp"

namespace copyforge {
namespace {

double Number(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : NAN;
}

int64_t Integer(const nlohmann::json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number_integer() ? it->get<int64_t>() : fallback;
}

}  // namespace

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
  r.step = Integer(j, "step", -1);
  if (r.step < 0) return std::nullopt;
  auto event = j.find("event");
  if (event != j.end() && event->is_string() && event->get<std::string>() == "start") {
    r.kind = Kind::kStart;
    r.world = static_cast<int>(Integer(j, "world", 1));
    auto from = j.find("resumed_from");
    if (from != j.end() && from->is_string()) r.resumed_from = from->get<std::string>();
  } else if (j.contains("val_loss")) {
    r.kind = Kind::kEval;
    r.val_loss = Number(j, "val_loss");
    r.val_ppl = Number(j, "val_ppl");
  } else if (j.contains("tokens_per_s")) {
    r.kind = Kind::kStep;
    r.loss = Number(j, "loss");
    r.lr = Number(j, "lr");
    r.grad_norm = Number(j, "grad_norm");
    r.tokens_per_s = Number(j, "tokens_per_s");
    r.mfu = Number(j, "mfu");
    r.elapsed_s = Number(j, "elapsed_s");
    r.eta_s = Number(j, "eta_s");
  } else {
    return std::nullopt;
  }
  return r;
}

}  // namespace copyforge
