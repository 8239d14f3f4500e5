#include "server/train/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <sstream>

#include "common/durable_file.h"

namespace selene::train {
namespace {

constexpr int64_t kFormatVersion = 1;

// History is stored as text, one epoch per line of tab-separated key=value pairs: metric names
// vary by task, and text keeps the archive readable by any LibTorch version.
std::string EncodeHistory(const std::vector<EpochRecord>& history) {
  std::ostringstream out;
  out << std::setprecision(std::numeric_limits<double>::max_digits10);
  for (const EpochRecord& r : history) {
    out << "epoch=" << r.epoch << "\ttrain_loss=" << r.train_loss << "\tval_loss=" << r.val_loss
        << "\tlearning_rate=" << r.learning_rate << "\tseconds=" << r.seconds
        << "\timages_per_second=" << r.images_per_second
        << "\tdata_wait_fraction=" << r.data_wait_fraction;
    for (const auto& [name, value] : r.train_metrics) out << "\ttrain." << name << "=" << value;
    for (const auto& [name, value] : r.val_metrics) out << "\tval." << name << "=" << value;
    out << "\n";
  }
  return out.str();
}

StatusOr<std::vector<EpochRecord>> DecodeHistory(const std::string& text) {
  std::vector<EpochRecord> history;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    EpochRecord r;
    std::istringstream fields(line);
    std::string field;
    while (std::getline(fields, field, '\t')) {
      const size_t eq = field.rfind('=');
      if (eq == std::string::npos) return InvalidArgumentError("bad history field: " + field);
      const std::string key = field.substr(0, eq);
      const double value = std::strtod(field.c_str() + eq + 1, nullptr);
      if (key == "epoch")
        r.epoch = static_cast<int64_t>(value);
      else if (key == "train_loss")
        r.train_loss = value;
      else if (key == "val_loss")
        r.val_loss = value;
      else if (key == "learning_rate")
        r.learning_rate = value;
      else if (key == "seconds")
        r.seconds = value;
      else if (key == "images_per_second")
        r.images_per_second = value;
      else if (key == "data_wait_fraction")
        r.data_wait_fraction = value;
      else if (key.rfind("train.", 0) == 0)
        r.train_metrics[key.substr(6)] = value;
      else if (key.rfind("val.", 0) == 0)
        r.val_metrics[key.substr(4)] = value;
    }
    history.push_back(std::move(r));
  }
  return history;
}

// Reads `module`'s parameters and buffers (recursively) from `archive`, checking that each is
// present with the right shape. `path` is the dotted name so far, for error messages.
Status ReadModule(torch::serialize::InputArchive& archive, torch::nn::Module& module,
                  const std::string& path) {
  torch::NoGradGuard no_grad;
  auto read_tensor = [&](const std::string& name, torch::Tensor& target, bool is_buffer) -> Status {
    torch::Tensor stored;
    if (!archive.try_read(name, stored, is_buffer)) {
      return NotFoundError("checkpoint has no tensor " + path + name);
    }
    if (stored.sizes() != target.sizes()) {
      std::ostringstream message;
      message << "tensor " << path << name << " has shape " << stored.sizes()
              << " in the checkpoint but " << target.sizes() << " in the model";
      return InvalidArgumentError(message.str());
    }
    target.copy_(stored);
    return OkStatus();
  };
  for (auto& item : module.named_parameters(/*recurse=*/false)) {
    SELENE_RETURN_IF_ERROR(read_tensor(item.key(), item.value(), false));
  }
  for (auto& item : module.named_buffers(/*recurse=*/false)) {
    SELENE_RETURN_IF_ERROR(read_tensor(item.key(), item.value(), true));
  }
  for (auto& child : module.named_children()) {
    torch::serialize::InputArchive nested;
    if (!archive.try_read(child.key(), nested)) {
      // A child with no tensors of its own anywhere (e.g. ReLU) is not stored.
      if (child.value()->parameters().empty() && child.value()->buffers().empty()) continue;
      return NotFoundError("checkpoint has no module " + path + child.key());
    }
    SELENE_RETURN_IF_ERROR(ReadModule(nested, *child.value(), path + child.key() + "."));
  }
  return OkStatus();
}

// Tensors are mapped onto `device` as they load, so optimizer state lands next to the
// parameters it belongs to (a resumed CUDA run must not get CPU moments).
StatusOr<torch::serialize::InputArchive> OpenArchive(const std::string& path,
                                                     torch::Device device = torch::kCPU) {
  if (!std::filesystem::exists(path)) return NotFoundError("no checkpoint at " + path);
  torch::serialize::InputArchive archive;
  try {
    archive.load_from(path, device);
  } catch (const c10::Error& e) {
    return InvalidArgumentError("cannot read checkpoint " + path + ": " +
                                e.what_without_backtrace());
  }
  c10::IValue version;
  if (!archive.try_read("format_version", version) || !version.isInt()) {
    return InvalidArgumentError(path + " is not a Selene checkpoint (no format_version)");
  }
  if (version.toInt() > kFormatVersion) {
    return InvalidArgumentError(path + " has checkpoint format " + std::to_string(version.toInt()) +
                                ", newer than this build's " + std::to_string(kFormatVersion));
  }
  return archive;
}

}  // namespace

Status SaveCheckpoint(const std::string& path, models::NetworkImpl& network,
                      const std::string& metadata, torch::optim::Optimizer* optimizer,
                      const TrainingState* state) {
  // Serialised in memory first: torch's zip writer, writing to a file, throws from its
  // destructor when the disk fills up, which no caller can catch (the process aborts). Memory
  // cannot fill up halfway, and the file is then written by code that reports errno.
  std::ostringstream bytes;
  try {
    torch::serialize::OutputArchive archive;
    archive.write("format_version", c10::IValue(kFormatVersion));
    archive.write("metadata", c10::IValue(metadata));
    torch::serialize::OutputArchive model;
    network.save(model);
    archive.write("model", model);
    if (optimizer != nullptr) {
      torch::serialize::OutputArchive optimizer_archive;
      optimizer->save(optimizer_archive);
      archive.write("optimizer", optimizer_archive);
    }
    if (state != nullptr) {
      archive.write("next_epoch", c10::IValue(state->next_epoch));
      archive.write("next_step", c10::IValue(state->next_step));
      archive.write("best_epoch", c10::IValue(state->best_epoch));
      archive.write("best_value", c10::IValue(state->best_value));
      archive.write("epochs_without_improvement", c10::IValue(state->epochs_without_improvement));
      archive.write("schedule_state", torch::tensor(state->schedule_state, torch::kFloat64),
                    /*is_buffer=*/true);
      archive.write("history", c10::IValue(EncodeHistory(state->history)));
      archive.write("trained_unvalidated", c10::IValue(EncodeHistory(state->trained_unvalidated)));
    }
    archive.save_to(bytes);
  } catch (const c10::Error& e) {
    return InternalError("cannot serialise checkpoint " + path + ": " + e.what_without_backtrace());
  }
  return WriteFileDurably(path, bytes.str());
}

Status LoadCheckpoint(const std::string& path, models::NetworkImpl& network,
                      torch::optim::Optimizer* optimizer, TrainingState* state) {
  const auto parameters = network.parameters();
  const torch::Device device = parameters.empty() ? torch::kCPU : parameters.front().device();
  SELENE_ASSIGN_OR_RETURN(torch::serialize::InputArchive archive, OpenArchive(path, device));
  try {
    torch::serialize::InputArchive model;
    if (!archive.try_read("model", model)) return InvalidArgumentError(path + " has no model");
    SELENE_RETURN_IF_ERROR(ReadModule(model, network, ""));
    if (optimizer != nullptr) {
      torch::serialize::InputArchive optimizer_archive;
      if (archive.try_read("optimizer", optimizer_archive)) optimizer->load(optimizer_archive);
    }
    if (state != nullptr) {
      c10::IValue value;
      if (archive.try_read("next_epoch", value)) state->next_epoch = value.toInt();
      if (archive.try_read("next_step", value)) state->next_step = value.toInt();
      if (archive.try_read("best_epoch", value)) state->best_epoch = value.toInt();
      if (archive.try_read("best_value", value)) state->best_value = value.toDouble();
      if (archive.try_read("epochs_without_improvement", value)) {
        state->epochs_without_improvement = value.toInt();
      }
      torch::Tensor schedule;
      if (archive.try_read("schedule_state", schedule, /*is_buffer=*/true)) {
        schedule = schedule.to(torch::kFloat64).contiguous();
        state->schedule_state.assign(schedule.data_ptr<double>(),
                                     schedule.data_ptr<double>() + schedule.numel());
      }
      if (archive.try_read("trained_unvalidated", value)) {
        SELENE_ASSIGN_OR_RETURN(state->trained_unvalidated, DecodeHistory(value.toStringRef()));
      }
      if (archive.try_read("history", value)) {
        SELENE_ASSIGN_OR_RETURN(state->history, DecodeHistory(value.toStringRef()));
      }
    }
  } catch (const c10::Error& e) {
    return InvalidArgumentError("cannot load checkpoint " + path + ": " +
                                e.what_without_backtrace());
  }
  return OkStatus();
}

StatusOr<std::string> ReadCheckpointMetadata(const std::string& path) {
  SELENE_ASSIGN_OR_RETURN(torch::serialize::InputArchive archive, OpenArchive(path));
  c10::IValue metadata;
  if (!archive.try_read("metadata", metadata) || !metadata.isString()) return std::string();
  return metadata.toStringRef();
}

Status LoadModuleWeights(const std::string& path, torch::nn::Module& target,
                         const std::string& source_prefix) {
  SELENE_ASSIGN_OR_RETURN(torch::serialize::InputArchive archive, OpenArchive(path));
  try {
    torch::serialize::InputArchive current;
    if (!archive.try_read("model", current)) return InvalidArgumentError(path + " has no model");
    std::istringstream parts(source_prefix);
    std::string part;
    std::string walked;
    while (std::getline(parts, part, '.')) {
      if (part.empty()) continue;
      torch::serialize::InputArchive nested;
      if (!current.try_read(part, nested)) {
        return NotFoundError("checkpoint " + path + " has no module " + walked + part);
      }
      current = std::move(nested);
      walked += part + ".";
    }
    Status status = ReadModule(current, target, walked);
    if (!status.ok()) {
      return Status(status.code(),
                    "loading weights from " + path + ": " + std::string(status.message()));
    }
  } catch (const c10::Error& e) {
    return InvalidArgumentError("cannot load weights from " + path + ": " +
                                e.what_without_backtrace());
  }
  return OkStatus();
}

}  // namespace selene::train
