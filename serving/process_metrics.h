// The standard Prometheus process metrics (process_cpu_seconds_total, resident and virtual
// memory, open and maximum file descriptors, start time), read from /proc/self, in the names
// and units every Prometheus client library uses, so dashboards and alerts work unchanged.
#ifndef COPYFORGE_SERVING_PROCESS_METRICS_H_
#define COPYFORGE_SERVING_PROCESS_METRICS_H_

#include <string>

namespace copyforge {

// Appends the process metrics in the Prometheus text format; a value /proc does not give is
// left out rather than reported as 0.
void AppendProcessMetrics(std::string* out);

}  // namespace copyforge

#endif  // COPYFORGE_SERVING_PROCESS_METRICS_H_
