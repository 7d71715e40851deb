// Run-time choice of the CPU kernel family.
#include "cpu/kernels.h"

#include <array>
#include <atomic>
#include <cstdlib>

#include "hisa/numeric.h"

namespace hisa::cpu {
namespace {

// Best first.
constexpr std::array<const Kernel*, 4> kAllKernels = {&kAmxKernel, &kAvx512Kernel, &kAvx2Kernel,
                                                      &kScalarKernel};

const Kernel* FindSupported(std::string_view name) {
  for (const Kernel* kernel : kAllKernels) {
    if (name == kernel->name && kernel->supported()) return kernel;
  }
  return nullptr;
}

const Kernel* DefaultKernel() {
  if (const char* requested = std::getenv("HISA_CPU_KERNEL")) {
    if (const Kernel* kernel = FindSupported(requested)) return kernel;
  }
  for (const Kernel* kernel : kAllKernels) {
    if (kernel->supported()) return kernel;
  }
  return &kScalarKernel;
}

std::atomic<const Kernel*>& ActiveSlot() {
  static std::atomic<const Kernel*> active{DefaultKernel()};
  return active;
}

}  // namespace

const Kernel& ActiveKernel() {
  return *ActiveSlot().load(std::memory_order_relaxed);
}

std::vector<const Kernel*> SupportedKernels() {
  std::vector<const Kernel*> kernels;
  for (const Kernel* kernel : kAllKernels) {
    if (kernel->supported()) kernels.push_back(kernel);
  }
  return kernels;
}

bool ForceKernel(std::string_view name) {
  const Kernel* kernel = FindSupported(name);
  if (kernel == nullptr) return false;
  ActiveSlot().store(kernel, std::memory_order_relaxed);
  return true;
}

const uint16_t* Fp8ToBf16Table() {
  static const std::array<uint16_t, 256> table = [] {
    std::array<uint16_t, 256> bits{};
    for (int code = 0; code < 256; ++code) {
      bits[code] = FloatToBf16(Fp8ToFloat(static_cast<uint8_t>(code)));
    }
    return bits;
  }();
  return table.data();
}

const float* Fp8ToFloatTable() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> values{};
    for (int code = 0; code < 256; ++code) values[code] = Fp8ToFloat(static_cast<uint8_t>(code));
    return values;
  }();
  return table.data();
}

}  // namespace hisa::cpu
