// Small socket helpers shared by the local launcher and the worker agent.
#ifndef COPYFORGE_TRAINER_COMMON_NET_UTIL_H_
#define COPYFORGE_TRAINER_COMMON_NET_UTIL_H_

namespace copyforge {

// A TCP port on 0.0.0.0 that was free a moment ago (for a rendezvous store to bind), or 0.
int FreeTcpPort();

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_COMMON_NET_UTIL_H_
