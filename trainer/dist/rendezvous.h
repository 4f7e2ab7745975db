// Pieces the communicator backends share: the TCP key-value store every rank meets at, and the
// translation of a backend exception into a status naming backend, rank and operation.
#ifndef COPYFORGE_TRAINER_DIST_RENDEZVOUS_H_
#define COPYFORGE_TRAINER_DIST_RENDEZVOUS_H_

#include <torch/csrc/distributed/c10d/Store.hpp>

#include <exception>
#include <string>

#include "absl/status/status.h"
#include "trainer/dist/communicator.h"

namespace copyforge {

// Rank 0 serves the store at store_host:store_port and waits for the others; they connect. Throws
// the c10d exception on failure (callers turn it into a status with CollectiveError).
c10::intrusive_ptr<c10d::Store> ConnectStore(const CommunicatorOptions& options);

// "<backend> rank <r>: <what> failed[ (timed out: a peer is dead or stuck)]: <first line>";
// DEADLINE_EXCEEDED for timeouts, UNAVAILABLE otherwise.
absl::Status CollectiveError(const std::string& backend, const std::string& what, int rank,
                             const std::exception& e);

}  // namespace copyforge

#endif  // COPYFORGE_TRAINER_DIST_RENDEZVOUS_H_
