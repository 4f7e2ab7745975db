// The engine's admission in isolation: queue bound, FIFO order with no overtaking, slots and
// the token budget taken and given back, dropping waiting requests.
#include "serving/admission.h"

#include <gtest/gtest.h>

namespace copyforge {
namespace {

struct Item {
  int id = 0;
  int slot = -1;
  int64_t reserved = 0;
};

std::unique_ptr<Item> Make(int id, int64_t reserved) {
  auto item = std::make_unique<Item>();
  item->id = id;
  item->reserved = reserved;
  return item;
}

TEST(Admission, SlotsBudgetOrderAndQueueBound) {
  Admission<Item> a(/*slots=*/2, /*budget=*/100, /*max_queue=*/3);
  ASSERT_TRUE(a.Enqueue(Make(1, 60)).ok());
  ASSERT_TRUE(a.Enqueue(Make(2, 50)).ok());  // does not fit next to 1
  ASSERT_TRUE(a.Enqueue(Make(3, 10)).ok());  // would fit, but waits behind 2
  const absl::Status full = a.Enqueue(Make(4, 1));
  EXPECT_TRUE(absl::IsResourceExhausted(full));
  EXPECT_NE(full.message().find("max_queue 3"), std::string::npos);

  auto first = a.Admit();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(first->id, 1);
  EXPECT_EQ(a.reserved(), 60);
  EXPECT_EQ(a.Admit(), nullptr);  // 60 + 50 > 100: the head waits, nothing overtakes it
  EXPECT_EQ(a.queued(), 2);
  a.Release(*first);
  EXPECT_EQ(first->slot, -1);
  a.Release(*first);  // once only
  EXPECT_EQ(a.reserved(), 0);
  EXPECT_EQ(a.free_slots(), 2);
  auto second = a.Admit(), third = a.Admit();
  ASSERT_NE(second, nullptr);
  ASSERT_NE(third, nullptr);
  EXPECT_EQ(second->id, 2);
  EXPECT_EQ(third->id, 3);
  EXPECT_NE(second->slot, third->slot);
  EXPECT_EQ(a.free_slots(), 0);
  ASSERT_TRUE(a.Enqueue(Make(5, 1)).ok());
  EXPECT_EQ(a.Admit(), nullptr);  // no slot left
}

TEST(Admission, DropsWaitingRequestsInOrder) {
  Admission<Item> a(1, 10, 8);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(a.Enqueue(Make(i, 1)).ok());
  auto dropped = a.DropWaiting([](const Item& item) { return item.id % 2 == 1; });
  ASSERT_EQ(dropped.size(), 2u);
  EXPECT_EQ(dropped[0]->id, 1);
  EXPECT_EQ(dropped[1]->id, 3);
  EXPECT_EQ(a.queued(), 3);
  EXPECT_EQ(a.Admit()->id, 0);
  EXPECT_EQ(a.DropWaiting([](const Item&) { return true; }).size(), 2u);
}

}  // namespace
}  // namespace copyforge
