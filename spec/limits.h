// Upper bounds the job spec's validation enforces, documented in job_spec.proto. They keep every
// size and count computed from a spec finite and far from int64 overflow; whether a job within
// them fits a machine is the server's memory check at submit (server/jobs/memory_estimate.h).
#pragma once

#include <cstdint>

namespace selene::spec {

inline constexpr int64_t kMaxEpochs = 100000;
inline constexpr int64_t kMaxBatchSize = 65536;
inline constexpr int64_t kMinImageSize = 8;
inline constexpr int64_t kMaxImageSize = 4096;
inline constexpr int64_t kMaxNumSamples = 1000000;  // synthetic data sets
inline constexpr int64_t kMaxClasses = 65536;
inline constexpr int64_t kMaxInChannels = 64;
// Any channel width: base widths, their caps, stem and stage widths. Wide enough that a width
// is refused for the memory it needs on the machine at hand, not by a fixed rule.
inline constexpr int64_t kMaxWidth = int64_t{1} << 20;
inline constexpr int64_t kMaxStageBlocks = 1024;

// training.device value that lets the server pick any of its devices (as does an empty one);
// selene-train runs it on the CPU.
inline constexpr char kAnyDevice[] = "auto";

}  // namespace selene::spec
