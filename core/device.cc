#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/accelerator.h"
#include "core/quote.h"
#include "moe_adapter/device.h"

#ifdef MOE_ADAPTER_HAVE_CUDA
#include "core/cuda/cuda_convert.h"
#endif

namespace moe_adapter {
namespace {

#ifdef MOE_ADAPTER_HAVE_CUDA
cuda::ElemType ToElem(DType d) {
  switch (d) {
    case DType::kBF16: return cuda::ElemType::kBF16;
    case DType::kF16: return cuda::ElemType::kF16;
    default: return cuda::ElemType::kF32;
  }
}

absl::Status FromCuda(const cuda::CudaStatus& s) {
  if (s.ok()) return absl::OkStatus();
  if (s.code == cuda::kCudaInvalidArgument) return absl::InvalidArgumentError(absl::StrCat("cuda: ", s.message));
  return absl::InternalError(absl::StrCat("cuda: ", s.message));
}

class CudaAccelerator final : public ExpertAccelerator {
 public:
  explicit CudaAccelerator(std::unique_ptr<cuda::CudaExpertConverter> conv) : conv_(std::move(conv)) {}
  absl::Status ToHf(const void* G, const void* D, int64_t n, int64_t H, int64_t I, DType src, DType dst,
                    void* const* gate, void* const* up, void* const* down) override {
    std::lock_guard<std::mutex> lock(mu_);
    return FromCuda(conv_->ToHfExperts(G, D, n, H, I, ToElem(src), ToElem(dst), gate, up, down));
  }
  absl::Status FromHf(const void* const* gate, const void* const* up, const void* const* down, int64_t n, int64_t H,
                      int64_t I, DType src, DType dst, void* G, void* D) override {
    std::lock_guard<std::mutex> lock(mu_);
    return FromCuda(conv_->FromHfExperts(gate, up, down, n, H, I, ToElem(src), ToElem(dst), G, D));
  }

 private:
  std::mutex mu_;  // one pipeline per device
  std::unique_ptr<cuda::CudaExpertConverter> conv_;
};

absl::StatusOr<Device> OpenCuda(int index) {
  std::string why;
  const int count = cuda::CudaDeviceCount(&why);
  if (count <= 0) return absl::FailedPreconditionError(absl::StartsWith(why, "no CUDA device") ? why : absl::StrCat("no CUDA device: ", why));
  if (index >= count) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA device ", index, " does not exist (", count, " found)"));
  }
  cuda::CudaConverterOptions o;
  o.device = index;
  std::unique_ptr<cuda::CudaExpertConverter> conv;
  cuda::CudaStatus s = cuda::CudaExpertConverter::Create(o, &conv);
  if (!s.ok()) return absl::FailedPreconditionError(absl::StrCat("cannot use CUDA device ", index, ": ", s.message));
  cuda::CudaDeviceInfo info;
  cuda::GetCudaDeviceInfo(index, &info);
  Device d;
  d.name = absl::StrCat("cuda:", index, " (", info.name, ")");
  d.accelerator = std::make_shared<CudaAccelerator>(std::move(conv));
  return d;
}
#endif

}  // namespace

bool CudaBuilt() {
#ifdef MOE_ADAPTER_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

absl::StatusOr<Device> OpenDevice(absl::string_view spec) {
  if (spec.empty() || spec == "cpu") return Device{};
  int index = 0;
  const bool is_auto = spec == "auto";
  if (!is_auto) {
    if (!absl::StartsWith(spec, "cuda") ||
        (spec.size() > 4 && (spec[4] != ':' || !absl::SimpleAtoi(spec.substr(5), &index) || index < 0))) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown device ", Quote(spec), ": expected cpu, cuda, cuda:N or auto"));
    }
  }
#ifdef MOE_ADAPTER_HAVE_CUDA
  absl::StatusOr<Device> d = OpenCuda(index);
  if (d.ok() || !is_auto) return d;
  return Device{};
#else
  if (is_auto) return Device{};
  return absl::FailedPreconditionError(
      "this build has no CUDA support (configure with nvcc available, MOE_ADAPTER_CUDA=AUTO or ON)");
#endif
}

}  // namespace moe_adapter
