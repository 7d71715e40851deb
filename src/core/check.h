// Internal: building and propagating Status values.
#pragma once

#include <fmt/format.h>

#include <utility>

#include "hisa/status.h"

namespace hisa::core {

template <typename... Args>
Status Invalid(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kInvalidArgument, fmt::format(f, std::forward<Args>(args)...)};
}

template <typename... Args>
Status Unsupported(fmt::format_string<Args...> f, Args&&... args) {
  return {StatusCode::kUnsupported, fmt::format(f, std::forward<Args>(args)...)};
}

}  // namespace hisa::core

#define HISA_RETURN_IF_ERROR(expr)     \
  do {                                 \
    ::hisa::Status _hisa_status = (expr); \
    if (!_hisa_status.ok()) return _hisa_status; \
  } while (0)
