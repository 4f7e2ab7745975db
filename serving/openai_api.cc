#include "serving/openai_api.h"

#include <cmath>
#include <set>

#include "absl/strings/str_cat.h"
#include "serving/request_prompt.h"

namespace copyforge {
namespace {

// Ordered, so a response_format schema keeps its property order (the order generated).
using Json = nlohmann::ordered_json;

absl::Status Bad(ApiError* error, const std::string& param, const std::string& message) {
  error->http_status = 400;
  error->param = param;
  error->message = message;
  return absl::InvalidArgumentError(message);
}

bool Number(const Json& j) { return j.is_number() && std::isfinite(j.get<double>()); }

// A task input from an extra body field, with the same names as the gRPC messages.
absl::Status TaskFrom(const std::string& field, const Json& j, v1::GenerateRequest* req,
                      ApiError* error) {
  if (!j.is_object()) return Bad(error, field, field + " must be an object");
  TaskInputFields f;
  for (const auto& [key, value] : j.items()) {
    const std::string where = absl::StrCat(field, ".", key);
    auto text = [&](std::string* out) -> absl::Status {
      if (!value.is_string()) return Bad(error, where, where + " must be a string");
      *out = value.get<std::string>();
      return absl::OkStatus();
    };
    auto list = [&](std::vector<std::string>* out) -> absl::Status {
      if (!value.is_array()) return Bad(error, where, where + " must be an array of strings");
      for (const Json& v : value) {
        if (!v.is_string()) return Bad(error, where, where + " must be an array of strings");
        out->push_back(v.get<std::string>());
      }
      return absl::OkStatus();
    };
    absl::Status st;
    if (key == "title" || key == "product_title") {
      st = text(&f.title);
    } else if (key == "brand") {
      st = text(&f.brand);
    } else if (key == "category") {
      st = text(&f.category);
    } else if (key == "price") {
      st = text(&f.price);
    } else if (key == "features") {
      st = list(&f.features);
    } else if (key == "business_name") {
      st = text(&f.business_name);
    } else if (key == "business_categories") {
      st = text(&f.business_categories);
    } else if (key == "city") {
      st = text(&f.city);
    } else if (key == "state") {
      st = text(&f.state);
    } else if (key == "rating") {
      if (!Number(value)) return Bad(error, where, where + " must be a number");
      f.rating = value.get<double>();
    } else if (key == "topic") {
      st = text(&f.topic);
    } else if (key == "products") {
      st = list(&f.products);
    } else {
      return Bad(error, where, "unknown field " + where);
    }
    if (!st.ok()) return st;
  }
  return SetTaskInput(field, f, req);
}

}  // namespace

nlohmann::ordered_json ApiError::ToJson() const {
  return {{"error",
           {{"message", message},
            {"type", type},
            {"param", param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(param)},
            {"code", code.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(code)}}}};
}

// OpenAI's response_format: {"type": "text"}, or {"type": "json_schema", "json_schema":
// {"name": ..., "schema": {...}, "strict": ...}}; a json_schema named "product_listing" without
// a schema takes the ready one.
absl::Status ResponseFormatFrom(const Json& v, v1::GenerateRequest* req, ApiError* error) {
  const std::string field = "response_format";
  if (v.is_null()) return absl::OkStatus();
  if (!v.is_object() || !v.contains("type") || !v["type"].is_string()) {
    return Bad(error, field, "response_format must be an object with a type");
  }
  for (const auto& [k, x] : v.items()) {
    if (k != "type" && k != "json_schema")
      return Bad(error, field + "." + k, "unknown field " + field + "." + k);
  }
  const std::string type = v["type"].get<std::string>();
  if (type == "text") return absl::OkStatus();
  if (type != "json_schema") {
    return Bad(error, field + ".type", "response_format.type must be text or json_schema");
  }
  const std::string where = field + ".json_schema";
  if (!v.contains("json_schema") || !v["json_schema"].is_object()) {
    return Bad(error, where, where + " must be an object with a schema or a ready schema's name");
  }
  const Json& js = v["json_schema"];
  for (const auto& [k, x] : js.items()) {
    if (k != "name" && k != "schema" && k != "strict" && k != "description") {
      return Bad(error, where + "." + k, "unknown field " + where + "." + k);
    }
  }
  if (js.contains("schema")) {
    if (!js["schema"].is_object())
      return Bad(error, where + ".schema", where + ".schema must be an object");
    req->mutable_response_format()->set_json_schema(js["schema"].dump());
    return absl::OkStatus();
  }
  if (!js.contains("name") || !js["name"].is_string()) {
    return Bad(error, where + ".schema", where + " needs a schema (or the name product_listing)");
  }
  req->mutable_response_format()->set_named_schema(js["name"].get<std::string>());
  return absl::OkStatus();
}

absl::StatusOr<CompletionRequest> ParseCompletionRequest(const std::string& body,
                                                         const std::string& model,
                                                         ApiError* error) {
  const Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Bad(error, "", "the request body is not a JSON object");
  }
  CompletionRequest out;
  v1::GenerateRequest base;
  base.mutable_stopping()->set_max_new_tokens(16);  // OpenAI's default max_tokens
  base.mutable_sampling()->set_temperature(1);
  std::vector<std::string> prompts;
  bool have_prompt = false, have_task = false;
  for (const auto& [key, v] : j.items()) {
    if (key == "model") {
      if (!v.is_string()) return Bad(error, key, "model must be a string");
      if (v.get<std::string>() != model) {
        error->http_status = 404;
        error->code = "model_not_found";
        error->param = "model";
        error->message = absl::StrCat("The model `", v.get<std::string>(),
                                      "` does not exist; this server serves `", model, "`");
        return absl::NotFoundError(error->message);
      }
    } else if (key == "prompt") {
      have_prompt = true;
      if (v.is_string()) {
        prompts.push_back(v.get<std::string>());
      } else if (v.is_array() && !v.empty()) {
        for (const Json& p : v) {
          if (!p.is_string()) return Bad(error, key, "prompt must be a string or strings");
          prompts.push_back(p.get<std::string>());
        }
      } else {
        return Bad(error, key, "prompt must be a string or a non-empty array of strings");
      }
    } else if (key == "product_description" || key == "review" || key == "blog_post") {
      if (have_task) return Bad(error, key, "give one task input");
      have_task = true;
      if (absl::Status st = TaskFrom(key, v, &base, error); !st.ok()) return st;
    } else if (key == "max_tokens") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > (1 << 30)) {
        return Bad(error, key, "max_tokens must be a non-negative integer");
      }
      base.mutable_stopping()->set_max_new_tokens(static_cast<uint32_t>(v.get<int64_t>()));
    } else if (key == "temperature") {
      if (!Number(v) || v.get<double>() < 0) return Bad(error, key, "temperature must be >= 0");
      base.mutable_sampling()->set_temperature(v.get<float>());
    } else if (key == "top_p") {
      if (!Number(v) || v.get<double>() <= 0 || v.get<double>() > 1) {
        return Bad(error, key, "top_p must be in (0, 1]");
      }
      base.mutable_sampling()->set_top_p(v.get<float>());
    } else if (key == "top_k") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) {
        return Bad(error, key, "top_k must be a non-negative integer");
      }
      base.mutable_sampling()->set_top_k(
          static_cast<int32_t>(std::min<int64_t>(v.get<int64_t>(), 1 << 20)));
    } else if (key == "repetition_penalty") {
      if (!Number(v) || v.get<double>() <= 0) {
        return Bad(error, key, "repetition_penalty must be > 0");
      }
      base.mutable_sampling()->set_repetition_penalty(v.get<float>());
    } else if (key == "seed") {
      if (!v.is_number_integer()) return Bad(error, key, "seed must be an integer");
      base.mutable_sampling()->set_seed(static_cast<uint64_t>(v.get<int64_t>()));
    } else if (key == "n") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 128) {
        return Bad(error, key, "n must be an integer from 1 to 128");
      }
      out.n = static_cast<uint32_t>(v.get<int64_t>());
    } else if (key == "stop") {
      if (v.is_string()) {
        base.mutable_stopping()->add_stop(v.get<std::string>());
      } else if (v.is_array()) {
        for (const Json& s : v) {
          if (!s.is_string()) return Bad(error, key, "stop must be a string or strings");
          base.mutable_stopping()->add_stop(s.get<std::string>());
        }
      } else if (!v.is_null()) {
        return Bad(error, key, "stop must be a string or an array of strings");
      }
    } else if (key == "logprobs") {
      if (v.is_null()) continue;
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > 5) {
        return Bad(error, key, "logprobs must be an integer from 0 to 5");
      }
      out.logprobs = static_cast<int>(v.get<int64_t>());
      base.set_return_logprobs(true);
    } else if (key == "echo" || key == "stream") {
      if (!v.is_boolean()) return Bad(error, key, key + " must be a boolean");
      (key == "echo" ? out.echo : out.stream) = v.get<bool>();
    } else if (key == "stream_options") {
      if (v.is_null()) continue;
      if (!v.is_object()) return Bad(error, key, "stream_options must be an object");
      for (const auto& [k, o] : v.items()) {
        if (k != "include_usage" || !o.is_boolean()) {
          return Bad(error, "stream_options." + k, "stream_options takes include_usage only");
        }
        out.include_usage = o.get<bool>();
      }
    } else if (key == "response_format") {
      if (absl::Status st = ResponseFormatFrom(v, &base, error); !st.ok()) return st;
    } else if (key == "watermark") {
      if (!v.is_boolean()) return Bad(error, key, "watermark must be a boolean");
      base.mutable_watermark()->set_mode(v.get<bool>() ? v1::WatermarkOptions::ON
                                                       : v1::WatermarkOptions::OFF);
    } else if (key == "user") {
      if (!v.is_string() || v.get<std::string>().size() > 256) {
        return Bad(error, key, "user must be a string of at most 256 bytes");
      }
      base.set_request_id(v.get<std::string>());
    } else if (key == "presence_penalty" || key == "frequency_penalty") {
      if (!v.is_null() && (!Number(v) || v.get<double>() != 0)) {
        return Bad(error, key, key + " is not supported (use repetition_penalty)");
      }
    } else if (key == "best_of") {
      if (!v.is_null() && (!v.is_number_integer() || v.get<int64_t>() != out.n)) {
        return Bad(error, key, "best_of is not supported");
      }
    } else if (key == "suffix" || key == "logit_bias") {
      if (!v.is_null() && !(v.is_object() && v.empty())) {
        return Bad(error, key, key + " is not supported");
      }
    } else {
      return Bad(error, key, "unknown field " + key);
    }
  }
  if (have_prompt == have_task) {
    return Bad(error, "prompt",
               "give a prompt, or one task input (product_description, review, blog_post)");
  }
  base.set_num_return_sequences(out.n);
  if (have_task) prompts.push_back("");
  for (const std::string& p : prompts) {
    v1::GenerateRequest req = base;
    if (!have_task) req.set_prompt(p);
    out.requests.push_back(std::move(req));
    out.echo_text.push_back(p);
  }
  return out;
}

nlohmann::ordered_json LogprobsJson(const std::vector<std::string>& tokens,
                                    const std::vector<float>& logprobs, size_t offset) {
  nlohmann::ordered_json top = nlohmann::ordered_json::array();
  nlohmann::ordered_json offsets = nlohmann::ordered_json::array();
  for (size_t i = 0; i < tokens.size(); ++i) {
    top.push_back({{tokens[i], i < logprobs.size() ? logprobs[i] : 0.0f}});
    offsets.push_back(offset);
    offset += tokens[i].size();
  }
  return {{"tokens", tokens},
          {"token_logprobs", logprobs},
          {"top_logprobs", top},
          {"text_offset", offsets}};
}

nlohmann::ordered_json UsageJson(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

nlohmann::ordered_json CompletionResponse(const std::string& id, int64_t created,
                                          const std::string& model,
                                          const std::vector<ChoiceResult>& choices,
                                          const Usage& usage, bool with_logprobs) {
  nlohmann::ordered_json list = nlohmann::ordered_json::array();
  for (size_t i = 0; i < choices.size(); ++i) {
    const ChoiceResult& c = choices[i];
    list.push_back({{"text", c.text},
                    {"index", i},
                    {"logprobs", with_logprobs ? LogprobsJson(c.tokens, c.logprobs, 0)
                                               : nlohmann::ordered_json()},
                    {"finish_reason", c.finish_reason}});
    if (c.longest_copy >= 0) list.back()["longest_copied_tokens"] = c.longest_copy;
    if (c.watermarked) list.back()["watermarked"] = true;
  }
  return {{"id", id},        {"object", "text_completion"}, {"created", created}, {"model", model},
          {"choices", list}, {"usage", UsageJson(usage)}};
}

nlohmann::ordered_json CompletionChunk(const std::string& id, int64_t created,
                                       const std::string& model, uint32_t index,
                                       const std::string& text, const std::string& finish_reason) {
  return {{"id", id},
          {"object", "text_completion"},
          {"created", created},
          {"model", model},
          {"choices",
           {{{"text", text},
             {"index", index},
             {"logprobs", nullptr},
             {"finish_reason", finish_reason.empty() ? nlohmann::ordered_json()
                                                     : nlohmann::ordered_json(finish_reason)}}}}};
}

ApiError ErrorFromStatus(const absl::Status& st) {
  ApiError e;
  e.message = std::string(st.message());
  switch (st.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      e.http_status = 400;
      // Our messages start with the field they name ("sampling.top_k must ...").
      e.param = e.message.substr(0, e.message.find_first_of(" :"));
      break;
    case absl::StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "rate_limit_error";
      break;
    case absl::StatusCode::kUnavailable:
      e.http_status = 503;
      e.type = "service_unavailable";
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.http_status = 408;
      e.type = "timeout";
      break;
    case absl::StatusCode::kUnauthenticated:
      e.http_status = 401;
      e.type = "authentication_error";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
  }
  return e;
}

}  // namespace copyforge
