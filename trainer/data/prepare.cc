#include "trainer/data/prepare.h"

#include <glob.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "trainer/common/file_util.h"
#include "trainer/common/progress.h"
#include "trainer/common/status_macros.h"
#include "trainer/common/threads.h"
#include "trainer/data/csv_rows.h"
#include "trainer/data/eval_tasks.h"
#include "trainer/data/line_reader.h"
#include "trainer/data/ngram_index.h"
#include "trainer/data/record_processor.h"
#include "trainer/data/shard_writer.h"

namespace copyforge {
namespace {

constexpr size_t kChunkBytes = 1 << 20;
constexpr size_t kChunkLines = 2048;
constexpr int kMalformedExamples = 5;

struct ResolvedInput {
  std::string path;
  Format format;
  int64_t bytes;
};

// A batch of lines of one file, in input order.
struct Chunk {
  int64_t seq = 0;
  int file = 0;
  std::string buffer;
  std::vector<std::pair<size_t, size_t>> lines;  // offset, length in buffer
  std::vector<int64_t> line_numbers;
  int64_t bytes_done = 0;  // input bytes consumed up to the end of this chunk, all files
};

struct ChunkResult {
  Chunk chunk;
  std::vector<ProcessedRecord> records;
};

// A bounded FIFO; Close() wakes everyone and makes Pop return false once empty.
template <typename T>
class Channel {
 public:
  explicit Channel(size_t capacity) : capacity_(capacity) {}
  bool Push(T item) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_ || items_.size() < capacity_; });
    if (closed_) return false;
    items_.push_back(std::move(item));
    cv_.notify_all();
    return true;
  }
  bool Pop(T* item) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (items_.empty()) return false;
    *item = std::move(items_.front());
    items_.pop_front();
    cv_.notify_all();
    return true;
  }
  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> items_;
  size_t capacity_;
  bool closed_ = false;
};

bool IsCsvPath(const std::string& path) {
  return absl::EndsWith(path, ".csv") || absl::EndsWith(path, ".csv.gz");
}

absl::StatusOr<std::vector<ResolvedInput>> ResolveInputs(const PrepareOptions& options) {
  std::vector<ResolvedInput> out;
  RecordParser parser;
  for (const PrepareInput& in : options.inputs) {
    glob_t g{};
    const int rc = ::glob(in.path.c_str(), GLOB_TILDE, nullptr, &g);
    std::vector<std::string> paths(g.gl_pathv, g.gl_pathv + (rc == 0 ? g.gl_pathc : 0));
    ::globfree(&g);
    if (paths.empty())
      return absl::NotFoundError(absl::StrCat("input ", in.path, " matches no file"));
    std::sort(paths.begin(), paths.end());
    for (const std::string& path : paths) {
      Format f = in.format;
      if (f == Format::kAuto && IsCsvPath(path)) f = Format::kCsv;
      if (f == Format::kAuto) {
        CF_ASSIGN_OR_RETURN(auto reader, LineReader::Open(path));
        std::string_view line;
        for (int i = 0; i < 50 && f == Format::kAuto; ++i) {
          CF_ASSIGN_OR_RETURN(bool more, reader->Next(&line));
          if (!more) break;
          f = parser.Detect(line);
        }
        if (f == Format::kAuto) {
          return absl::InvalidArgumentError(
              absl::StrCat(path,
                           ": cannot tell the format from its first records; give it in the config "
                           "(inputs: - {path: ..., format: ...})"));
        }
      }
      out.push_back({path, f, FileSize(path)});
    }
  }
  // Metadata first, so that reviews can be joined with it.
  std::stable_sort(out.begin(), out.end(), [](const ResolvedInput& a, const ResolvedInput& b) {
    return IsMetadata(a.format) && !IsMetadata(b.format);
  });
  return out;
}

class Pipeline {
 public:
  Pipeline(const PrepareOptions& options, const Tokenizer& tokenizer, const TemplateSet& templates,
           const std::string& staging, int threads)
      : options_(options),
        tokenizer_(tokenizer),
        templates_(templates),
        pii_(static_cast<uint32_t>(options.pii_match_limit)),
        minhash_(options.minhash),
        dedup_(options.minhash),
        copy_index_(options.copy_index_n),
        threads_(threads) {
    const bool wide = tokenizer.vocab_size() > 65536;
    for (const char* split : {"train", "val"}) {
      if (options.pretrain)
        writers_.emplace(
            absl::StrCat("pretrain/", split),
            ShardWriter(staging, "pretrain", split, wide, false, options.shard_tokens));
      if (options.finetune)
        writers_.emplace(absl::StrCat("finetune/", split),
                         ShardWriter(staging, "finetune", split, wide, true, options.shard_tokens));
    }
  }

  // Runs the files in `inputs` through the threads; returns when all is committed.
  absl::Status Run(const std::vector<ResolvedInput>& inputs, int64_t total_bytes,
                   Progress* progress) {
    Channel<Chunk> chunks(2 * threads_ + 2);
    std::mutex done_mu;
    std::condition_variable done_cv;
    std::map<int64_t, ChunkResult> done;
    absl::Status read_status;
    int64_t last_seq = -1;
    bool reading = true;

    std::thread reader([&] {
      read_status = Read(inputs, &chunks, &last_seq);
      chunks.Close();
      std::lock_guard<std::mutex> lock(done_mu);
      reading = false;
      done_cv.notify_all();
    });
    std::vector<std::thread> workers;
    std::vector<double> tokenize_seconds(threads_, 0);
    for (int t = 0; t < threads_; ++t) {
      workers.emplace_back([&, t] {
        RecordProcessor processor(options_, tokenizer_, templates_, pii_, minhash_, tables_);
        Chunk chunk;
        while (chunks.Pop(&chunk)) {
          ChunkResult result;
          result.records.reserve(chunk.lines.size());
          for (const auto& [off, len] : chunk.lines) {
            result.records.push_back(processor.Process(
                std::string_view(chunk.buffer).substr(off, len), inputs[chunk.file].format));
          }
          result.chunk = std::move(chunk);
          std::lock_guard<std::mutex> lock(done_mu);
          done.emplace(result.chunk.seq, std::move(result));
          done_cv.notify_all();
        }
        tokenize_seconds[t] = processor.tokenize_seconds();
      });
    }
    absl::Status commit_status;
    for (int64_t seq = next_seq_;; ++seq) {
      ChunkResult result;
      {
        std::unique_lock<std::mutex> lock(done_mu);
        done_cv.wait(lock, [&] { return done.count(seq) || (!reading && (last_seq < seq)); });
        if (!done.count(seq)) break;
        result = std::move(done.at(seq));
        done.erase(seq);
      }
      if (commit_status.ok()) commit_status = Commit(inputs, result);
      if (!commit_status.ok()) chunks.Close();
      progress->Update(
          result.chunk.bytes_done + bytes_before_,
          absl::StrFormat("%.0f records/s",
                          stats_.records / std::max(1e-9, progress->ElapsedSeconds())));
    }
    reader.join();
    stats_.line_too_long += std::exchange(overlong_lines_, 0);
    for (auto& w : workers) w.join();
    for (double s : tokenize_seconds) stats_.tokenize_seconds += s;
    next_seq_ = last_seq + 1;
    bytes_before_ += total_bytes;
    CF_RETURN_IF_ERROR(read_status);
    return commit_status;
  }

  absl::Status Finish(nlohmann::ordered_json* datasets) {
    *datasets = nlohmann::ordered_json::object();
    for (auto& [name, writer] : writers_) {
      CF_RETURN_IF_ERROR(writer.Finish());
      const std::string dataset = name.substr(0, name.find('/'));
      const std::string split = name.substr(name.find('/') + 1);
      nlohmann::ordered_json shards = nlohmann::ordered_json::array();
      for (const ShardInfo& s : writer.shards()) shards.push_back(ShardInfoJson(s));
      (*datasets)[dataset][split] = {{"tokens", writer.total_tokens()},
                                     {"documents", writer.total_documents()},
                                     {"shards", shards}};
      stats_.tokens += writer.total_tokens();
      stats_.shards += static_cast<int64_t>(writer.shards().size());
    }
    return absl::OkStatus();
  }

  // Writes eval/tasks.jsonl and ngrams.bin into `staging`.
  absl::Status WriteEvalFiles(const std::string& staging) {
    if (options_.finetune) {
      std::filesystem::create_directories(staging + "/eval");
      CF_RETURN_IF_ERROR(WriteFileSynced(staging + "/" + kEvalTasksFile, eval_tasks_));
    }
    if (options_.copy_index_n > 0) {
      CF_ASSIGN_OR_RETURN(stats_.copy_index_entries,
                          copy_index_.Write(staging + "/" + kCopyIndexFile));
    }
    return absl::OkStatus();
  }

  PrepareStats& stats() { return stats_; }

 private:
  absl::Status Read(const std::vector<ResolvedInput>& inputs, Channel<Chunk>* out,
                    int64_t* last_seq) {
    int64_t seq = next_seq_;
    int64_t bytes_done = 0;
    for (int file = 0; file < static_cast<int>(inputs.size()); ++file) {
      CF_ASSIGN_OR_RETURN(auto reader,
                          LineReader::Open(inputs[file].path, options_.max_line_bytes));
      Chunk chunk;
      auto flush = [&](bool force) -> bool {
        if (chunk.lines.empty() ||
            (!force && chunk.lines.size() < kChunkLines && chunk.buffer.size() < kChunkBytes))
          return true;
        chunk.seq = seq;
        chunk.file = file;
        chunk.bytes_done = bytes_done + reader->compressed_offset();
        *last_seq = seq++;
        bool ok = out->Push(std::move(chunk));
        chunk = Chunk();
        return ok;
      };
      auto add = [&](std::string_view line, int64_t number) {
        chunk.lines.emplace_back(chunk.buffer.size(), line.size());
        chunk.line_numbers.push_back(number);
        chunk.buffer.append(line);
      };
      std::string_view line;
      CsvRows csv(options_.csv, options_.max_line_bytes);
      std::function<void(std::string)> on_row = [&](std::string row) {
        add(row, reader->line_number());
      };
      while (true) {
        CF_ASSIGN_OR_RETURN(bool more, reader->Next(&line));
        if (!more) break;
        if (inputs[file].format == Format::kCsv) {
          CF_RETURN_IF_ERROR(csv.Feed(line, reader->line_number(), inputs[file].path, on_row));
        } else if (!line.empty()) {
          add(line, reader->line_number());
        }
        if (!flush(false)) return absl::OkStatus();  // the committer stopped early
      }
      if (inputs[file].format == Format::kCsv)
        CF_RETURN_IF_ERROR(csv.Finish(inputs[file].path, on_row));
      flush(true);
      overlong_lines_ += reader->overlong_lines();
      bytes_done += inputs[file].bytes;
    }
    return absl::OkStatus();
  }

  absl::Status Commit(const std::vector<ResolvedInput>& inputs, ChunkResult& result) {
    for (size_t i = 0; i < result.records.size(); ++i) {
      ProcessedRecord& r = result.records[i];
      ++stats_.records;
      stats_.pii_replacements += r.pii_replacements;
      if (r.product) {
        ++stats_.metadata;
        tables_.products.try_emplace(r.product->id, std::move(*r.product));
      }
      if (r.business) {
        ++stats_.metadata;
        tables_.businesses.try_emplace(r.business->id, std::move(*r.business));
      }
      switch (r.drop) {
        case DropReason::kNone:
          break;
        case DropReason::kMalformed:
          ++stats_.malformed;
          if (stats_.malformed_examples.size() < kMalformedExamples) {
            const auto [off, len] = result.chunk.lines[i];
            std::string text = result.chunk.buffer.substr(off, std::min<size_t>(len, 80));
            stats_.malformed_examples.push_back(
                absl::StrCat(inputs[result.chunk.file].path, ":", result.chunk.line_numbers[i],
                             ": ", r.problem, ": ", text, len > 80 ? "..." : ""));
          }
          continue;
        case DropReason::kEmpty:
          ++stats_.empty;
          continue;
        case DropReason::kTooShort:
          ++stats_.too_short;
          continue;
        case DropReason::kFiltered:
          ++stats_.filtered;
          continue;
        case DropReason::kPiiError:
          ++stats_.pii_error;
          continue;
      }
      if (!r.has_text) continue;
      if (options_.exact_dedup || options_.near_dedup) {
        // With exact dedup off, every text gets its own key so only the MinHash check applies.
        const uint64_t key =
            options_.exact_dedup ? r.exact_hash : StableHash(absl::StrCat(stats_.records));
        switch (dedup_.Check(key, r.signature, options_.near_dedup, &r.band_keys)) {
          case DedupIndex::Verdict::kExactDuplicate:
            ++stats_.duplicate;
            continue;
          case DedupIndex::Verdict::kNearDuplicate:
            ++stats_.near_duplicate;
            continue;
          case DedupIndex::Verdict::kUnique:
            break;
        }
      }
      ++stats_.kept;
      const char* split = r.validation ? "val" : "train";
      if (!r.document.empty()) {
        CF_RETURN_IF_ERROR(writers_.at(absl::StrCat("pretrain/", split)).Append(r.document, {}));
        ++stats_.documents;
      }
      if (!r.pair.empty()) {
        CF_RETURN_IF_ERROR(
            writers_.at(absl::StrCat("finetune/", split)).Append(r.pair, r.pair_mask));
        ++stats_.pairs;
      }
      stats_.pairs_without_metadata += r.pair_without_metadata;
      if (!r.eval_task.empty()) {
        absl::StrAppend(&eval_tasks_, r.eval_task, "\n");
        ++stats_.eval_tasks;
      }
      if (!r.validation && options_.copy_index_n > 0) {
        // The training text as the model saw it: the document, else the pair's target part.
        if (!r.document.empty()) {
          copy_index_.Add(r.document, 0, r.document.size() - 1);  // without <|endoftext|>
        } else if (!r.pair.empty()) {
          const size_t target = static_cast<size_t>(
              std::find(r.pair_mask.begin(), r.pair_mask.end(), 1) - r.pair_mask.begin());
          copy_index_.Add(r.pair, target, r.pair.size() - 1);
        }
      }
    }
    return absl::OkStatus();
  }

  const PrepareOptions& options_;
  const Tokenizer& tokenizer_;
  const TemplateSet& templates_;
  PiiScrubber pii_;
  MinHasher minhash_;
  DedupIndex dedup_;
  JoinTables tables_;  // written by the committer between phases, read by workers during one
  std::map<std::string, ShardWriter> writers_;
  std::string eval_tasks_;        // eval/tasks.jsonl, in input order
  NgramIndexBuilder copy_index_;  // the training split's token windows
  PrepareStats stats_;
  int64_t overlong_lines_ = 0;  // written by the reader thread, read after it is joined
  int threads_;
  int64_t next_seq_ = 0;
  int64_t bytes_before_ = 0;
};

}  // namespace

absl::StatusOr<PrepareStats> RunPrepare(const PrepareOptions& options) {
  CF_RETURN_IF_ERROR(options.Validate());
  CF_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::Load(options.tokenizer));
  if (tokenizer->eot_id() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.tokenizer, ": the vocabulary has no <|endoftext|> token"));
  }
  CF_ASSIGN_OR_RETURN(TemplateSet templates, options.templates.empty()
                                                 ? TemplateSet::Default()
                                                 : TemplateSet::LoadFile(options.templates));
  CF_ASSIGN_OR_RETURN(std::vector<ResolvedInput> inputs, ResolveInputs(options));
  const int threads = ResolveThreads(options.threads);
  int64_t total_bytes = 0;
  std::vector<ResolvedInput> meta, rest;
  for (const auto& in : inputs) {
    total_bytes += in.bytes;
    (IsMetadata(in.format) ? meta : rest).push_back(in);
  }
  PrepareStats stats;
  CF_RETURN_IF_ERROR(WriteDirectoryAtomic(
      options.out, options.overwrite, [&](const std::string& staging) -> absl::Status {
        Progress progress("prepare", "MB", total_bytes, options.show_progress, 1e6);
        Pipeline pipeline(options, *tokenizer, templates, staging, threads);
        // Phase 1 loads the metadata the reviews of phase 2 are joined with.
        for (const auto* phase : {&meta, &rest}) {
          int64_t bytes = 0;
          for (const auto& in : *phase) bytes += in.bytes;
          CF_RETURN_IF_ERROR(pipeline.Run(*phase, bytes, &progress));
        }
        nlohmann::ordered_json datasets;
        CF_RETURN_IF_ERROR(pipeline.Finish(&datasets));
        CF_RETURN_IF_ERROR(pipeline.WriteEvalFiles(staging));
        stats = pipeline.stats();
        stats.input_bytes = total_bytes;
        stats.threads = threads;
        stats.seconds = progress.ElapsedSeconds();
        progress.Finish(absl::StrFormat("%d records", stats.records));

        std::filesystem::create_directories(staging + "/tokenizer");
        CF_RETURN_IF_ERROR(tokenizer->SaveFiles(staging + "/tokenizer"));
        CF_RETURN_IF_ERROR(WriteFileSynced(staging + "/templates.yaml", templates.yaml()));
        nlohmann::ordered_json input_list = nlohmann::ordered_json::array();
        for (const auto& in : inputs)
          input_list.push_back(
              {{"path", in.path}, {"format", FormatName(in.format)}, {"bytes", in.bytes}});
        nlohmann::ordered_json manifest = {
            {"format", "copyforge-shards/1"},
            {"dtype", tokenizer->vocab_size() > 65536 ? "uint32" : "uint16"},
            {"eot_id", tokenizer->eot_id()},
            {"vocab_size", tokenizer->vocab_size()},
            {"tokenizer", {{"dir", "tokenizer"}, {"source", options.tokenizer}}},
            {"templates",
             {{"file", "templates.yaml"},
              {"source", templates.path()},
              {"names", templates.Names()}}},
            {"datasets", datasets},
            {"eval_tasks", options.finetune ? nlohmann::ordered_json{{"file", kEvalTasksFile},
                                                                     {"count", stats.eval_tasks}}
                                            : nlohmann::ordered_json()},
            {"copy_index", options.copy_index_n > 0
                               ? nlohmann::ordered_json{{"file", kCopyIndexFile},
                                                        {"n", options.copy_index_n},
                                                        {"entries", stats.copy_index_entries}}
                               : nlohmann::ordered_json()},
            {"inputs", input_list},
            {"options", options.ToJson()},
            {"stats",
             {{"records", stats.records},
              {"kept", stats.kept},
              {"metadata", stats.metadata},
              {"dropped",
               {{"malformed", stats.malformed},
                {"empty", stats.empty},
                {"too_short", stats.too_short},
                {"filtered", stats.filtered},
                {"pii_error", stats.pii_error},
                {"line_too_long", stats.line_too_long},
                {"duplicate", stats.duplicate},
                {"near_duplicate", stats.near_duplicate}}},
              {"pii_replacements", stats.pii_replacements},
              {"pairs_without_metadata", stats.pairs_without_metadata},
              {"documents", stats.documents},
              {"pairs", stats.pairs},
              {"tokens", stats.tokens}}}};
        return WriteFileSynced(staging + "/manifest.json", manifest.dump(2) + "\n");
      }));
  return stats;
}

}  // namespace copyforge
