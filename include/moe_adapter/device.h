// File: moe_adapter/device.h
//
// Where expert transposes run: "cpu" (the default), "cuda" / "cuda:N" (an
// NVIDIA GPU, when the build has CUDA), or "auto" (a GPU when one is usable,
// else the CPU). Results are bit-identical on every device.
//
// Example:
//   absl::StatusOr<moe_adapter::Device> dev = moe_adapter::OpenDevice("auto");
//   auto conv = moe_adapter::ToHfConverter::Create(options, *dev);
//
// Thread-safety: a Device may be shared by many sessions; GPU work from
// several sessions is serialised on the device.
#ifndef MOE_ADAPTER_DEVICE_H_
#define MOE_ADAPTER_DEVICE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace moe_adapter {

class ExpertAccelerator;  // core/accelerator.h

struct Device {
  std::string name = "cpu";  // what runs: "cpu" or "cuda:0 (NVIDIA H200)"
  std::shared_ptr<ExpertAccelerator> accelerator;  // null on the CPU
};

// OpenDevice(): "cpu" | "cuda" | "cuda:N" | "auto". "cuda" without a usable
// GPU (or without CUDA in the build) is kFailedPrecondition with the reason;
// "auto" then falls back to the CPU.
absl::StatusOr<Device> OpenDevice(absl::string_view spec);

// CudaBuilt(): whether this build has the CUDA kernels.
bool CudaBuilt();

}  // namespace moe_adapter

#endif  // MOE_ADAPTER_DEVICE_H_
