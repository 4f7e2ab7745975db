#include "trainer/tokenizer/bpe_trainer.h"

#include <algorithm>
#include <queue>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"
#include "trainer/common/absl_compat.h"
#include "trainer/common/progress.h"
#include "trainer/tokenizer/byte_unicode.h"
#include "trainer/tokenizer/pretokenizer.h"

namespace copyforge {
namespace {

inline uint64_t Key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

struct Word {
  std::vector<int32_t> symbols;
  int64_t count;
};

struct HeapEntry {
  int64_t count;
  int32_t left, right;
  // Highest count first; ties go to the smaller (left, right) ids.
  bool operator<(const HeapEntry& o) const {
    return std::tie(count, o.left, o.right) < std::tie(o.count, left, right);
  }
};

}  // namespace

struct BpeTrainer::PieceCounts {
  absl::flat_hash_map<std::string, int64_t> map;
};

BpeTrainer::BpeTrainer(BpeTrainerOptions options)
    : options_(std::move(options)), pieces_(std::make_shared<PieceCounts>()) {}

absl::Status BpeTrainer::Add(std::string_view text) {
  input_bytes_ += static_cast<int64_t>(text.size());
  // Special tokens are cut out so that no merge spans or spells them.
  size_t start = 0;
  while (start <= text.size()) {
    size_t cut = std::string_view::npos;
    size_t cut_len = 0;
    for (const std::string& s : options_.special_tokens) {
      size_t p = text.find(s, start);
      if (p < cut) cut = p, cut_len = s.size();
    }
    std::string_view part =
        text.substr(start, cut == std::string_view::npos ? text.npos : cut - start);
    SplitGpt2(part, [&](std::string_view piece) { ++pieces_->map[AsAbsl(piece)]; });
    if (cut == std::string_view::npos) break;
    start = cut + cut_len;
  }
  return absl::OkStatus();
}

absl::StatusOr<BpeTrainerResult> BpeTrainer::Train() {
  const int32_t num_special = static_cast<int32_t>(options_.special_tokens.size());
  if (options_.vocab_size < 256 + num_special) {
    return absl::InvalidArgumentError(absl::StrCat("vocab_size ", options_.vocab_size,
                                                   " is below the 256 byte tokens plus ",
                                                   num_special, " special tokens"));
  }
  // Token ids 0..255 are the bytes in GPT-2's order.
  std::vector<std::string> token_bytes;
  int32_t byte_token[256];
  for (int i = 0; i < 256; ++i) {
    unsigned char b = BytesInVocabOrder()[i];
    byte_token[b] = i;
    token_bytes.emplace_back(1, static_cast<char>(b));
  }

  // Words in sorted order so that everything downstream is deterministic.
  std::vector<std::pair<std::string, int64_t>> sorted(pieces_->map.begin(), pieces_->map.end());
  std::sort(sorted.begin(), sorted.end());
  std::vector<Word> words;
  words.reserve(sorted.size());
  for (const auto& [piece, count] : sorted) {
    Word w{{}, count};
    for (unsigned char c : piece) w.symbols.push_back(byte_token[c]);
    words.push_back(std::move(w));
  }

  absl::flat_hash_map<uint64_t, int64_t> pair_count;
  absl::flat_hash_map<uint64_t, absl::flat_hash_set<int32_t>> where;
  for (int32_t wi = 0; wi < static_cast<int32_t>(words.size()); ++wi) {
    const Word& w = words[wi];
    for (size_t i = 0; i + 1 < w.symbols.size(); ++i) {
      uint64_t k = Key(w.symbols[i], w.symbols[i + 1]);
      pair_count[k] += w.count;
      where[k].insert(wi);
    }
  }
  std::priority_queue<HeapEntry> heap;
  for (const auto& [k, c] : pair_count) {
    heap.push({c, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xFFFFFFFF)});
  }

  const int32_t target_merges = options_.vocab_size - 256 - num_special;
  std::vector<std::pair<int32_t, int32_t>> merges;
  Progress progress("train-tokenizer", "merges", target_merges, options_.show_progress);
  while (static_cast<int32_t>(merges.size()) < target_merges && !heap.empty()) {
    HeapEntry top = heap.top();
    heap.pop();
    const uint64_t key = Key(top.left, top.right);
    auto pc = pair_count.find(key);
    const int64_t actual = pc == pair_count.end() ? 0 : pc->second;
    if (actual != top.count) {
      if (actual > 0) heap.push({actual, top.left, top.right});
      continue;
    }
    if (actual < options_.min_frequency) break;
    const int32_t new_id = static_cast<int32_t>(token_bytes.size());
    token_bytes.push_back(token_bytes[top.left] + token_bytes[top.right]);
    merges.emplace_back(top.left, top.right);

    absl::flat_hash_set<uint64_t> touched;
    auto words_with_pair = where[key];
    std::vector<int32_t> order(words_with_pair.begin(), words_with_pair.end());
    std::sort(order.begin(), order.end());
    for (int32_t wi : order) {
      Word& w = words[wi];
      auto dec = [&](int32_t a, int32_t b) {
        uint64_t k = Key(a, b);
        if ((pair_count[k] -= w.count) <= 0) pair_count.erase(k);
      };
      auto inc = [&](int32_t a, int32_t b) {
        uint64_t k = Key(a, b);
        pair_count[k] += w.count;
        where[k].insert(wi);
        touched.insert(k);
      };
      std::vector<int32_t>& s = w.symbols;
      std::vector<int32_t> out;
      out.reserve(s.size());
      for (size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == top.left && s[i + 1] == top.right) {
          out.push_back(new_id);
          i += 2;
        } else {
          out.push_back(s[i++]);
        }
      }
      if (out.size() == s.size()) continue;
      for (size_t i = 0; i + 1 < s.size(); ++i) dec(s[i], s[i + 1]);
      for (size_t i = 0; i + 1 < out.size(); ++i) inc(out[i], out[i + 1]);
      s = std::move(out);
    }
    where.erase(key);
    pair_count.erase(key);
    for (uint64_t k : touched) {
      auto it = pair_count.find(k);
      if (it != pair_count.end()) {
        heap.push(
            {it->second, static_cast<int32_t>(k >> 32), static_cast<int32_t>(k & 0xFFFFFFFF)});
      }
    }
    progress.Update(static_cast<int64_t>(merges.size()));
  }
  progress.Finish(absl::StrCat(words.size(), " distinct pieces"));

  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t id = 0; id < token_bytes.size(); ++id) {
    vocab[BytesToVocabString(token_bytes[id])] = id;
  }
  for (const std::string& s : options_.special_tokens) vocab[s] = vocab.size();
  BpeTrainerResult result;
  result.vocab_json = vocab.dump();
  result.merges_txt = "#version: 0.2\n";
  for (const auto& [a, b] : merges) {
    absl::StrAppend(&result.merges_txt, BytesToVocabString(token_bytes[a]), " ",
                    BytesToVocabString(token_bytes[b]), "\n");
  }
  result.vocab_size = static_cast<int32_t>(vocab.size());
  result.num_merges = static_cast<int64_t>(merges.size());
  result.words = static_cast<int64_t>(words.size());
  result.input_bytes = input_bytes_;
  return result;
}

}  // namespace copyforge
