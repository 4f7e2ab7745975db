// The engine's admission: a bounded first-in-first-out queue of waiting requests, the KV cache's
// slots, and the token budget (prompt + max_new_tokens reserved by every running request). A
// request is admitted in order when a slot is free and its reservation fits the budget: a large
// request at the head waits for room rather than being overtaken, so it cannot starve. Not
// thread-safe: the engine holds its lock around every call. Torch-free; T is any request type
// with `int slot` and `int64_t reserved`.
#ifndef COPYFORGE_SERVING_ADMISSION_H_
#define COPYFORGE_SERVING_ADMISSION_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace copyforge {

template <typename T>
class Admission {
 public:
  Admission(int slots, int64_t budget, int max_queue) : budget_(budget), max_queue_(max_queue) {
    for (int s = slots - 1; s >= 0; --s) free_slots_.push_back(s);
  }

  // Queues `item` (RESOURCE_EXHAUSTED when max_queue are waiting; the item is then dropped).
  absl::Status Enqueue(std::unique_ptr<T> item) {
    if (static_cast<int>(queue_.size()) >= max_queue_) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the queue is full (max_queue ", max_queue_, " waiting requests)"));
    }
    queue_.push_back(std::move(item));
    return absl::OkStatus();
  }

  // The head of the queue with a slot and its reservation taken, or null when it must wait.
  std::unique_ptr<T> Admit() {
    if (queue_.empty() || free_slots_.empty() || reserved_ + queue_.front()->reserved > budget_) {
      return nullptr;
    }
    std::unique_ptr<T> item = std::move(queue_.front());
    queue_.pop_front();
    item->slot = free_slots_.back();
    free_slots_.pop_back();
    reserved_ += item->reserved;
    return item;
  }

  // Gives back an admitted item's slot and reservation (once: its slot becomes -1).
  void Release(T& item) {
    if (item.slot < 0) return;
    free_slots_.push_back(item.slot);
    reserved_ -= item.reserved;
    item.slot = -1;
  }

  // Removes the waiting items `drop` selects, in queue order.
  std::vector<std::unique_ptr<T>> DropWaiting(const std::function<bool(const T&)>& drop) {
    std::vector<std::unique_ptr<T>> dropped;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (drop(**it)) {
        dropped.push_back(std::move(*it));
        it = queue_.erase(it);
      } else {
        ++it;
      }
    }
    return dropped;
  }

  int queued() const { return static_cast<int>(queue_.size()); }
  int free_slots() const { return static_cast<int>(free_slots_.size()); }
  int64_t reserved() const { return reserved_; }
  int64_t budget() const { return budget_; }

 private:
  const int64_t budget_;
  const int max_queue_;
  std::deque<std::unique_ptr<T>> queue_;
  std::vector<int> free_slots_;
  int64_t reserved_ = 0;
};

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_ADMISSION_H_
