#include "serving/request_prompt.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace copyforge {

absl::StatusOr<std::string> RenderRequestPrompt(const v1::GenerateRequest& req,
                                                const TemplateSet& templates) {
  auto prompt_of = [&](const std::string& name,
                       const TemplateFields& fields) -> absl::StatusOr<std::string> {
    const auto names = templates.Names();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the templates have no \"", name, "\" template"));
    }
    return templates.Get(name).prompt.Render(fields);
  };
  switch (req.input_case()) {
    case v1::GenerateRequest::kProductDescription: {
      const auto& p = req.product_description();
      if (p.title().empty()) {
        return absl::InvalidArgumentError("product_description.title is empty");
      }
      return prompt_of("product_description",
                       {{"product_title", p.title()},
                        {"brand", p.brand()},
                        {"category", p.category()},
                        {"price", p.price()},
                        {"features", FormatList({p.features().begin(), p.features().end()})}});
    }
    case v1::GenerateRequest::kReview: {
      const auto& r = req.review();
      if (!(r.rating() >= 1 && r.rating() <= 5)) {
        return absl::InvalidArgumentError(
            absl::StrCat("review.rating must be between 1 and 5, got ", r.rating()));
      }
      if (!r.business_name().empty()) {
        return prompt_of("business_review", {{"name", r.business_name()},
                                             {"categories", r.business_categories()},
                                             {"city", r.city()},
                                             {"state", r.state()},
                                             {"rating", FormatRating(r.rating())}});
      }
      if (r.product_title().empty()) {
        return absl::InvalidArgumentError(
            "review needs product_title (a product review) or business_name (a business one)");
      }
      return prompt_of("product_review", {{"product_title", r.product_title()},
                                          {"category", r.category()},
                                          {"rating", FormatRating(r.rating())}});
    }
    case v1::GenerateRequest::kBlogPost: {
      const auto& b = req.blog_post();
      if (b.topic().empty()) return absl::InvalidArgumentError("blog_post.topic is empty");
      return prompt_of("blog_post",
                       {{"topic", b.topic()},
                        {"products", FormatList({b.products().begin(), b.products().end()})}});
    }
    default:
      return req.prompt();
  }
}

absl::Status SetTaskInput(const std::string& task, const TaskInputFields& f,
                          v1::GenerateRequest* req) {
  if (task == "product_description") {
    auto* p = req->mutable_product_description();
    p->set_title(f.title);
    p->set_brand(f.brand);
    p->set_category(f.category);
    p->set_price(f.price);
    for (const std::string& x : f.features) p->add_features(x);
  } else if (task == "review") {
    auto* r = req->mutable_review();
    r->set_product_title(f.title);
    r->set_category(f.category);
    r->set_business_name(f.business_name);
    r->set_business_categories(f.business_categories);
    r->set_city(f.city);
    r->set_state(f.state);
    r->set_rating(static_cast<float>(f.rating));
  } else if (task == "blog_post") {
    req->mutable_blog_post()->set_topic(f.topic);
    for (const std::string& p : f.products) req->mutable_blog_post()->add_products(p);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("task \"", task, "\" is not product_description, review or blog_post"));
  }
  return absl::OkStatus();
}

const char* TaskOf(const v1::GenerateRequest& req) {
  switch (req.input_case()) {
    case v1::GenerateRequest::kProductDescription:
      return "product_description";
    case v1::GenerateRequest::kReview:
      return "review";
    case v1::GenerateRequest::kBlogPost:
      return "blog_post";
    default:
      return "prompt";
  }
}

TaskInputFields TaskFieldsOf(const EvalTask& t) {
  TaskInputFields fields;
  fields.title = t.title;
  fields.brand = t.brand;
  fields.category = t.category;
  fields.price = t.price;
  fields.features = t.features;
  fields.business_name = t.business_name;
  fields.business_categories = t.business_categories;
  fields.city = t.city;
  fields.state = t.state;
  fields.rating = t.rating;
  return fields;
}

}  // namespace copyforge
