#include "trainer/tokenizer/tokenizer.h"

#include <algorithm>
#include <array>
#include <functional>
#include <limits>
#include <mutex>
#include <queue>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "nlohmann/json.hpp"
#include "trainer/common/absl_compat.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/tokenizer/byte_unicode.h"
#include "trainer/tokenizer/pretokenizer.h"

namespace copyforge {
namespace {

constexpr uint32_t kNoRank = std::numeric_limits<uint32_t>::max();
// Pieces longer than this go through the O(n log n) merge loop instead of the quadratic one.
constexpr size_t kLongPiece = 128;
// Pieces longer than this are not cached (they are rare and would crowd out the common ones).
constexpr size_t kMaxCachedPiece = 64;
constexpr size_t kCacheShards = 64;
constexpr size_t kMaxEntriesPerShard = 1 << 14;

struct Merge {
  uint32_t rank;
  int32_t merged;
};

inline uint64_t PairKey(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// std::mutex rather than absl::Mutex: this lock is taken once per piece, and Debian's Abseil
// build pays for deadlock-detection bookkeeping on every absl::Mutex acquisition.
using PieceMap = absl::flat_hash_map<std::string, std::vector<int32_t>>;

// Appends the cached ids of `piece`; false when it is not cached.
bool AppendCached(const PieceMap& map, std::string_view piece, std::vector<int32_t>* out) {
  auto it = map.find(AsAbsl(piece));
  if (it == map.end()) return false;
  out->insert(out->end(), it->second.begin(), it->second.end());
  return true;
}

// Caches ids[from..] for `piece`, starting over when the map holds `limit` entries.
void Remember(PieceMap* map, size_t limit, std::string_view piece, const std::vector<int32_t>& ids,
              size_t from) {
  if (map->size() >= limit) map->clear();
  map->emplace(std::string(piece),
               std::vector<int32_t>(ids.begin() + static_cast<std::ptrdiff_t>(from), ids.end()));
}

struct CacheShard {
  std::mutex mu;
  PieceMap map;  // guarded by mu
};

}  // namespace

struct PieceCache::Map {
  PieceMap map;
};
PieceCache::PieceCache() : map_(std::make_unique<Map>()) {}
PieceCache::~PieceCache() = default;

class Tokenizer::Impl {
 public:
  std::string vocab_json;
  std::string merges_txt;
  std::vector<std::string> id_to_bytes;
  std::array<int32_t, 256> byte_id{};
  absl::flat_hash_map<uint64_t, Merge> merges;
  std::vector<std::pair<std::string, int32_t>> specials;  // spelled text -> id
  int32_t eot = -1;
  mutable std::array<CacheShard, kCacheShards> cache;

  uint32_t RankOf(int32_t a, int32_t b, int32_t* merged) const {
    auto it = merges.find(PairKey(a, b));
    if (it == merges.end()) return kNoRank;
    *merged = it->second.merged;
    return it->second.rank;
  }

  void BpeShort(std::string_view piece, std::vector<int32_t>* out) const {
    std::vector<int32_t> parts(piece.size());
    for (size_t i = 0; i < piece.size(); ++i)
      parts[i] = byte_id[static_cast<unsigned char>(piece[i])];
    std::vector<uint32_t> ranks(parts.size());
    std::vector<int32_t> merged(parts.size());
    for (size_t i = 0; i + 1 < parts.size(); ++i)
      ranks[i] = RankOf(parts[i], parts[i + 1], &merged[i]);
    while (parts.size() > 1) {
      size_t best = 0;
      uint32_t best_rank = kNoRank;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        if (ranks[i] < best_rank) best_rank = ranks[i], best = i;
      }
      if (best_rank == kNoRank) break;
      parts[best] = merged[best];
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(best) + 1);
      if (best + 1 < parts.size()) {
        ranks[best] = RankOf(parts[best], parts[best + 1], &merged[best]);
      } else {
        ranks[best] = kNoRank;
      }
      if (best > 0) ranks[best - 1] = RankOf(parts[best - 1], parts[best], &merged[best - 1]);
    }
    out->insert(out->end(), parts.begin(), parts.end());
  }

  // Linked list of parts plus a min-heap of candidate merges ordered by (rank, position);
  // stale candidates are skipped when popped.
  void BpeLong(std::string_view piece, std::vector<int32_t>* out) const {
    const int n = static_cast<int>(piece.size());
    std::vector<int32_t> id(n);
    std::vector<int> prev(n), next(n);
    for (int i = 0; i < n; ++i) {
      id[i] = byte_id[static_cast<unsigned char>(piece[i])];
      prev[i] = i - 1;
      next[i] = i + 1 < n ? i + 1 : -1;
    }
    struct Candidate {
      uint32_t rank;
      int pos;
      int32_t left, right, merged;
      bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
      }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto push = [&](int pos) {
      if (pos < 0 || next[pos] < 0) return;
      int32_t m;
      uint32_t r = RankOf(id[pos], id[next[pos]], &m);
      if (r != kNoRank) heap.push({r, pos, id[pos], id[next[pos]], m});
    };
    for (int i = 0; i + 1 < n; ++i) push(i);
    std::vector<bool> alive(n, true);
    while (!heap.empty()) {
      Candidate c = heap.top();
      heap.pop();
      if (!alive[c.pos] || id[c.pos] != c.left) continue;
      int r = next[c.pos];
      if (r < 0 || id[r] != c.right) continue;
      id[c.pos] = c.merged;
      alive[r] = false;
      next[c.pos] = next[r];
      if (next[r] >= 0) prev[next[r]] = c.pos;
      push(prev[c.pos]);
      push(c.pos);
    }
    for (int i = 0; i >= 0; i = next[i]) out->push_back(id[i]);
  }

  void Bpe(std::string_view piece, std::vector<int32_t>* out) const {
    if (piece.size() > kLongPiece) {
      BpeLong(piece, out);
    } else {
      BpeShort(piece, out);
    }
  }

  void EncodePiece(std::string_view piece, std::vector<int32_t>* out,
                   PieceCache::Map* local) const {
    if (piece.size() == 1) {
      out->push_back(byte_id[static_cast<unsigned char>(piece[0])]);
      return;
    }
    if (piece.size() > kMaxCachedPiece) {
      Bpe(piece, out);
      return;
    }
    const size_t before = out->size();
    if (local != nullptr) {
      if (AppendCached(local->map, piece, out)) return;
      Bpe(piece, out);
      Remember(&local->map, kCacheShards * kMaxEntriesPerShard, piece, *out, before);
      return;
    }
    CacheShard& shard = cache[std::hash<std::string_view>()(piece) % kCacheShards];
    {
      std::lock_guard<std::mutex> lock(shard.mu);
      if (AppendCached(shard.map, piece, out)) return;
    }
    Bpe(piece, out);
    std::lock_guard<std::mutex> lock(shard.mu);
    Remember(&shard.map, kMaxEntriesPerShard, piece, *out, before);
  }

  void EncodeOrdinary(std::string_view text, std::vector<int32_t>* out,
                      PieceCache::Map* local) const {
    SplitGpt2(text, [&](std::string_view piece) { EncodePiece(piece, out, local); });
  }
};

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::Load(const std::string& dir) {
  const std::string vocab_path = dir + "/vocab.json";
  const std::string merges_path = dir + "/merges.txt";
  CF_ASSIGN_OR_RETURN(std::string vocab, ReadFile(vocab_path));
  CF_ASSIGN_OR_RETURN(std::string merges, ReadFile(merges_path));
  return FromContents(std::move(vocab), std::move(merges), dir);
}

absl::StatusOr<std::unique_ptr<Tokenizer>> Tokenizer::FromContents(std::string vocab_json,
                                                                   std::string merges_txt,
                                                                   const std::string& source) {
  auto impl = std::make_unique<Impl>();
  const std::string vocab_name = source + "/vocab.json";
  const std::string merges_name = source + "/merges.txt";
  nlohmann::json vocab = nlohmann::json::parse(vocab_json, nullptr, /*allow_exceptions=*/false);
  if (vocab.is_discarded() || !vocab.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(vocab_name, ": not a JSON object mapping token strings to ids"));
  }
  absl::flat_hash_map<std::string, int32_t> bytes_to_id;
  impl->id_to_bytes.resize(vocab.size());
  std::vector<bool> seen(vocab.size(), false);
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer()) {
      return absl::InvalidArgumentError(
          absl::StrCat(vocab_name, ": token \"", it.key(), "\" has a non-integer id"));
    }
    const int64_t id = it.value().get<int64_t>();
    if (id < 0 || id >= static_cast<int64_t>(vocab.size()) || seen[id]) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_name, ": token \"", it.key(),
                                                     "\" has id ", id,
                                                     ", which is out of range or repeated"));
    }
    seen[id] = true;
    const std::string& spelled = it.key();
    const bool special = spelled.size() > 4 && spelled.rfind("<|", 0) == 0 &&
                         spelled.compare(spelled.size() - 2, 2, "|>") == 0;
    if (special) {
      impl->specials.emplace_back(spelled, static_cast<int32_t>(id));
      impl->id_to_bytes[id] = spelled;
      if (spelled == "<|endoftext|>") impl->eot = static_cast<int32_t>(id);
      continue;
    }
    auto bytes = VocabStringToBytes(spelled);
    if (!bytes.ok())
      return absl::InvalidArgumentError(absl::StrCat(vocab_name, ": ", bytes.status().message()));
    impl->id_to_bytes[id] = *bytes;
    bytes_to_id.emplace(*std::move(bytes), static_cast<int32_t>(id));
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bytes_to_id.find(std::string(1, static_cast<char>(b)));
    if (it == bytes_to_id.end()) {
      return absl::InvalidArgumentError(absl::StrCat(vocab_name, ": no token for byte ", b,
                                                     " (a byte-level vocabulary needs all 256)"));
    }
    impl->byte_id[b] = it->second;
  }

  uint32_t rank = 0;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(merges_txt, '\n')) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(merges_name, ":", line_no, ": expected two tokens separated by one space"));
    }
    int32_t ids[3];
    std::string joined;
    for (int k = 0; k < 2; ++k) {
      auto bytes = VocabStringToBytes(AsStd(parts[k]));
      if (!bytes.ok())
        return absl::InvalidArgumentError(
            absl::StrCat(merges_name, ":", line_no, ": ", bytes.status().message()));
      auto it = bytes_to_id.find(*bytes);
      if (it == bytes_to_id.end()) {
        return absl::InvalidArgumentError(absl::StrCat(merges_name, ":", line_no, ": token \"",
                                                       parts[k], "\" is not in vocab.json"));
      }
      ids[k] = it->second;
      joined += *bytes;
    }
    auto it = bytes_to_id.find(joined);
    if (it == bytes_to_id.end()) {
      return absl::InvalidArgumentError(absl::StrCat(merges_name, ":", line_no, ": merged token \"",
                                                     parts[0], parts[1],
                                                     "\" is not in vocab.json"));
    }
    ids[2] = it->second;
    impl->merges.try_emplace(PairKey(ids[0], ids[1]), Merge{rank++, ids[2]});
  }
  impl->vocab_json = std::move(vocab_json);
  impl->merges_txt = std::move(merges_txt);
  return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, const EncodeOptions& options) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  EncodeAppend(text, options, &out);
  return out;
}

void Tokenizer::EncodeAppend(std::string_view text, const EncodeOptions& options,
                             std::vector<int32_t>* out, PieceCache* cache) const {
  PieceCache::Map* local = cache != nullptr ? cache->map_.get() : nullptr;
  if (!options.allow_special || impl_->specials.empty()) {
    impl_->EncodeOrdinary(text, out, local);
    return;
  }
  size_t start = 0;
  size_t pos = 0;
  while ((pos = text.find("<|", pos)) != std::string_view::npos) {
    bool matched = false;
    for (const auto& [spelled, id] : impl_->specials) {
      if (text.compare(pos, spelled.size(), spelled) == 0) {
        impl_->EncodeOrdinary(text.substr(start, pos - start), out, local);
        out->push_back(id);
        pos += spelled.size();
        start = pos;
        matched = true;
        break;
      }
    }
    if (!matched) pos += 2;
  }
  impl_->EncodeOrdinary(text.substr(start), out, local);
}

absl::StatusOr<std::string> Tokenizer::Decode(absl::Span<const int32_t> ids) const {
  std::string out;
  out.reserve(ids.size() * 4);
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (id < 0 || id >= vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("token id ", id, " at position ", i,
                                                     " is outside the vocabulary [0, ",
                                                     vocab_size(), ")"));
    }
    out += impl_->id_to_bytes[id];
  }
  return out;
}

std::string_view Tokenizer::TokenBytes(int32_t id) const { return impl_->id_to_bytes[id]; }
int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(impl_->id_to_bytes.size()); }
int32_t Tokenizer::eot_id() const { return impl_->eot; }

absl::Status Tokenizer::SaveFiles(const std::string& dir) const {
  CF_RETURN_IF_ERROR(WriteFileSynced(dir + "/vocab.json", impl_->vocab_json));
  return WriteFileSynced(dir + "/merges.txt", impl_->merges_txt);
}

std::vector<int32_t> Tokenizer::EncodePieceUncached(std::string_view piece) const {
  std::vector<int32_t> out;
  impl_->Bpe(piece, &out);
  return out;
}

}  // namespace copyforge
