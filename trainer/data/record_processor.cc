#include "trainer/data/record_processor.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/data/eval_tasks.h"
#include "trainer/data/text_clean.h"

namespace copyforge {
namespace {

void AddProductFields(const Product& p, TemplateFields* f) {
  (*f)["product_title"] = p.title;
  (*f)["brand"] = p.brand;
  (*f)["category"] = p.category;
  (*f)["price"] = p.price;
  (*f)["description"] = p.description;
  (*f)["features"] = FormatList(p.features);
}

}  // namespace

RecordProcessor::RecordProcessor(const PrepareOptions& options, const Tokenizer& tokenizer,
                                 const TemplateSet& templates, const PiiScrubber& pii,
                                 const MinHasher& minhash, const JoinTables& tables)
    : options_(options),
      tokenizer_(tokenizer),
      templates_(templates),
      pii_(pii),
      minhash_(minhash),
      tables_(tables) {}

ProcessedRecord RecordProcessor::Process(std::string_view line, Format format) {
  ProcessedRecord out;
  auto parsed = parser_.Parse(line, format, options_.csv);
  if (!parsed.ok()) {
    out.drop = DropReason::kMalformed;
    out.problem = std::string(parsed.status().message());
    return out;
  }
  switch (parsed->kind) {
    case ParsedRecord::Kind::kReview:
      ProcessReview(std::move(parsed->review), &out);
      break;
    case ParsedRecord::Kind::kProduct:
      ProcessProduct(std::move(parsed->product), &out);
      break;
    case ParsedRecord::Kind::kBusiness: {
      Business b = std::move(parsed->business);
      b.name = CleanText(b.name);
      b.categories = CleanText(b.categories);
      out.business = std::move(b);
      break;
    }
  }
  return out;
}

bool RecordProcessor::PassesFilters(const std::string& text, ProcessedRecord* out) const {
  if (text.empty()) {
    out->drop = DropReason::kEmpty;
  } else if (static_cast<int64_t>(text.size()) < options_.min_chars ||
             CountWords(text) < options_.min_words) {
    out->drop = DropReason::kTooShort;
  } else if (static_cast<int64_t>(text.size()) > options_.max_chars ||
             (options_.language == "en" &&
              EnglishStopwordRatio(text) < options_.min_english_ratio)) {
    out->drop = DropReason::kFiltered;
  }
  return out->drop == DropReason::kNone;
}

void RecordProcessor::Fingerprint(const std::string& text, const std::string& group,
                                  ProcessedRecord* out) const {
  const std::string norm = NormalizeForDedup(text);
  out->has_text = true;
  out->exact_hash = StableHash(norm);
  if (options_.near_dedup) {
    out->signature = minhash_.Signature(norm);
    out->band_keys = minhash_.BandKeys(out->signature);
  }
  // The split follows the product/business, so no product is seen in both splits.
  const uint64_t h = StableHash(group.empty() ? norm : group, options_.split_seed);
  out->validation = static_cast<double>(h % 1000000) / 1e6 < options_.validation_ratio;
}

void RecordProcessor::Tokenize(const std::string& text, std::vector<int32_t>* out) {
  const auto t0 = std::chrono::steady_clock::now();
  EncodeOptions plain;
  plain.allow_special = false;  // text from the corpus never produces a special token
  tokenizer_.EncodeAppend(text, plain, out, &cache_);
  tokenize_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void RecordProcessor::RenderDocument(const std::string& name, const TemplateFields& fields,
                                     ProcessedRecord* out) {
  if (!options_.pretrain) return;
  Tokenize(templates_.Get(name).text.Render(fields), &out->document);
  out->document.push_back(tokenizer_.eot_id());
}

void RecordProcessor::RenderPair(const std::string& name, const TemplateFields& fields,
                                 ProcessedRecord* out) {
  if (!options_.finetune) return;
  const NamedTemplate& t = templates_.Get(name);
  Tokenize(t.prompt.Render(fields), &out->pair);
  out->pair_mask.assign(out->pair.size(), 0);
  Tokenize(t.target.Render(fields), &out->pair);
  out->pair.push_back(tokenizer_.eot_id());
  out->pair_mask.resize(out->pair.size(), 1);
}

bool RecordProcessor::ScrubAll(const std::vector<std::string*>& fields,
                               const std::vector<std::string>& personal, ProcessedRecord* out) {
  for (std::string* field : fields) {
    absl::StatusOr<int> n = pii_.Scrub(field, personal);
    if (!n.ok()) {
      out->drop = DropReason::kPiiError;
      out->problem = std::string(n.status().message());
      return false;
    }
    out->pii_replacements += *n;
  }
  return true;
}

void RecordProcessor::ProcessReview(Review review, ProcessedRecord* out) {
  std::string text = CleanText(review.text);
  std::string title = CleanText(review.title);
  if (!ScrubAll({&text, &title}, review.personal, out)) return;
  if (!PassesFilters(text, out)) return;
  Fingerprint(text, review.group_id, out);
  TemplateFields fields = {
      {"title", title}, {"text", text}, {"rating", FormatRating(review.rating)}};
  RenderDocument("review_document", fields, out);
  if (!options_.finetune) return;
  EvalTask task;
  task.kind = "review";
  task.rating = review.rating;
  if (auto p = tables_.products.find(review.group_id); p != tables_.products.end()) {
    AddProductFields(p->second, &fields);
    RenderPair("product_review", fields, out);
    task.title = p->second.title;
    task.category = p->second.category;
    task.reference = title.empty() ? text : absl::StrCat(title, "\n", text);
  } else if (auto b = tables_.businesses.find(review.group_id); b != tables_.businesses.end()) {
    fields["name"] = b->second.name;
    fields["city"] = b->second.city;
    fields["state"] = b->second.state;
    fields["categories"] = b->second.categories;
    fields["stars"] = FormatRating(b->second.stars);
    RenderPair("business_review", fields, out);
    task.business_name = b->second.name;
    task.business_categories = b->second.categories;
    task.city = b->second.city;
    task.state = b->second.state;
    task.reference = text;
  } else {
    out->pair_without_metadata = true;
  }
  if (out->validation && !out->pair.empty() && review.rating > 0) {
    out->eval_task = task.ToJsonLine();
  }
}

void RecordProcessor::ProcessProduct(Product p, ProcessedRecord* out) {
  p.title = CleanText(p.title);
  p.brand = CleanText(p.brand);
  p.description = CleanText(p.description);
  for (std::string& f : p.features) f = CleanText(f);
  std::vector<std::string*> texts = {&p.title, &p.description};
  for (std::string& f : p.features) texts.push_back(&f);
  if (!ScrubAll(texts, {}, out)) return;  // neither text nor metadata of this product is kept
  out->product = p;
  // A product without a description is still metadata for its reviews, but writes no text.
  if (p.description.empty()) return;
  if (!PassesFilters(p.description, out)) return;
  Fingerprint(p.description, p.id, out);
  TemplateFields fields;
  AddProductFields(p, &fields);
  RenderDocument("product_document", fields, out);
  RenderPair("product_description", fields, out);
  if (out->validation && !out->pair.empty()) {
    EvalTask task;
    task.kind = "product_description";
    task.title = p.title;
    task.brand = p.brand;
    task.category = p.category;
    task.price = p.price;
    task.features = p.features;
    task.reference = p.description;
    out->eval_task = task.ToJsonLine();
  }
}

}  // namespace copyforge
