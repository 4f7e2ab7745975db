#include "trainer/data/shard_writer.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "trainer/common/file_util.h"
#include "trainer/common/status_macros.h"

namespace copyforge {

ShardWriter::ShardWriter(std::string dir, std::string dataset, std::string split, bool wide,
                         bool with_mask, int64_t shard_tokens)
    : dir_(std::move(dir)),
      dataset_(std::move(dataset)),
      split_(std::move(split)),
      wide_(wide),
      with_mask_(with_mask),
      shard_tokens_(shard_tokens) {}

absl::Status ShardWriter::Append(const std::vector<int32_t>& tokens,
                                 const std::vector<uint8_t>& mask) {
  if (with_mask_ != !mask.empty() || (with_mask_ && mask.size() != tokens.size())) {
    return absl::InternalError("loss mask does not match the document's tokens");
  }
  tokens_.insert(tokens_.end(), tokens.begin(), tokens.end());
  mask_.insert(mask_.end(), mask.begin(), mask.end());
  ++documents_;
  if (static_cast<int64_t>(tokens_.size()) >= shard_tokens_) return Flush();
  return absl::OkStatus();
}

absl::Status ShardWriter::Finish() {
  if (tokens_.empty()) return absl::OkStatus();
  return Flush();
}

absl::Status ShardWriter::Flush() {
  ShardInfo info;
  const std::string base = absl::StrFormat("%s/%s_%05d", dataset_, split_, shards_.size());
  info.file = base + ".bin";
  std::filesystem::create_directories(dir_ + "/" + dataset_);
  std::string bytes;
  if (wide_) {
    bytes.resize(tokens_.size() * 4);
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const auto v = static_cast<uint32_t>(tokens_[i]);
      for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<char>((v >> (8 * b)) & 0xFF);
    }
  } else {
    bytes.resize(tokens_.size() * 2);
    for (size_t i = 0; i < tokens_.size(); ++i) {
      const auto v = static_cast<uint16_t>(tokens_[i]);
      bytes[2 * i] = static_cast<char>(v & 0xFF);
      bytes[2 * i + 1] = static_cast<char>(v >> 8);
    }
  }
  CF_RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + info.file, bytes));
  info.sha256 = Sha256Hex(bytes);
  if (with_mask_) {
    info.mask_file = base + ".mask";
    std::string m(mask_.begin(), mask_.end());
    CF_RETURN_IF_ERROR(WriteFileAtomic(dir_ + "/" + info.mask_file, m));
    info.mask_sha256 = Sha256Hex(m);
  }
  info.tokens = static_cast<int64_t>(tokens_.size());
  info.documents = documents_;
  total_tokens_ += info.tokens;
  total_documents_ += documents_;
  shards_.push_back(std::move(info));
  tokens_.clear();
  mask_.clear();
  documents_ = 0;
  return absl::OkStatus();
}

nlohmann::ordered_json ShardInfoJson(const ShardInfo& info) {
  nlohmann::ordered_json j = {{"file", info.file},
                              {"tokens", info.tokens},
                              {"documents", info.documents},
                              {"sha256", info.sha256}};
  if (!info.mask_file.empty()) {
    j["mask_file"] = info.mask_file;
    j["mask_sha256"] = info.mask_sha256;
  }
  return j;
}

}  // namespace copyforge
