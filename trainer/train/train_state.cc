#include "trainer/train/train_state.h"

#include <sstream>

#include "absl/strings/str_cat.h"
#include "trainer/common/file_util.h"
#include "trainer/common/json_util.h"
#include "trainer/common/status_macros.h"
#include "trainer/device/device.h"

namespace copyforge {
namespace {

constexpr char kStateFile[] = "training_state.pt";
constexpr char kStateJson[] = "training_state.json";
constexpr char kFormat[] = "copyforge-train-state/1";
constexpr char kCpuRng[] = "cpu_rng_state";
constexpr char kCudaRng[] = "cuda_rng_state";

}  // namespace

absl::Status WriteTrainingState(const std::string& dir, torch::optim::Optimizer& optimizer,
                                const torch::Device& device, const TrainProgress& progress,
                                const nlohmann::ordered_json& config) {
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    archive.write(kCpuRng, at::detail::getDefaultCPUGenerator().get_state());
    if (device.is_cuda()) archive.write(kCudaRng, DefaultGenerator(device).get_state());
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    return absl::InternalError(
        absl::StrCat(dir, "/", kStateFile, ": ", e.what_without_backtrace()));
  }
  CF_RETURN_IF_ERROR(WriteFileSynced(dir + "/" + kStateFile, bytes.str()));
  nlohmann::ordered_json j = {{"format", kFormat},
                              {"step", progress.step},
                              {"epoch", progress.cursor.epoch},
                              {"position", progress.cursor.position},
                              {"world", progress.world},
                              {"device", device.str()},
                              {"config", config}};
  return WriteFileSynced(dir + "/" + kStateJson, j.dump(2) + "\n");
}

absl::StatusOr<TrainProgress> ReadTrainingState(const std::string& dir,
                                                torch::optim::Optimizer& optimizer,
                                                const torch::Device& device) {
  const std::string json_path = dir + "/" + kStateJson;
  CF_ASSIGN_OR_RETURN(std::string text, ReadFile(json_path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || j.value("format", "") != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat(json_path, ": not a copyforge training state"));
  }
  try {
    torch::serialize::InputArchive archive;
    archive.load_from(dir + "/" + kStateFile, device);
    optimizer.load(archive);
    torch::Tensor rng;
    archive.read(kCpuRng, rng);
    at::Generator cpu = at::detail::getDefaultCPUGenerator();
    cpu.set_state(rng.to(torch::kCPU));
    // A state saved on a GPU restores that GPU's generator; resumed on another device type,
    // only the CPU generator carries over.
    torch::Tensor cuda_rng;
    if (device.is_cuda() && archive.try_read(kCudaRng, cuda_rng)) {
      DefaultGenerator(device).set_state(cuda_rng.to(torch::kCPU));
    }
  } catch (const c10::Error& e) {
    return absl::DataLossError(
        absl::StrCat(dir, "/", kStateFile, ": ", e.what_without_backtrace()));
  }
  TrainProgress progress;
  progress.step = j.value("step", int64_t{0});
  progress.cursor = {j.value("epoch", int64_t{0}), j.value("position", int64_t{0})};
  progress.world = std::max<int64_t>(1, j.value("world", int64_t{1}));
  return progress;
}

absl::StatusOr<int64_t> ReadCheckpointStep(const std::string& dir) {
  const std::string path = dir + "/" + kStateJson;
  CF_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a copyforge training state"));
  }
  return JsonInt(j, "step", 0);
}

}  // namespace copyforge
