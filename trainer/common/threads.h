// The thread count a component uses when asked for "0 = one per core".
#ifndef COPYFORGE_TRAINER_COMMON_THREADS_H_
#define COPYFORGE_TRAINER_COMMON_THREADS_H_

#include <algorithm>
#include <thread>

namespace copyforge {

// `requested` when positive, else the number of cores (at least 1).
inline int ResolveThreads(int requested) {
  return requested > 0 ? requested
                       : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_THREADS_H_
