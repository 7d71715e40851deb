// Early return of a failed hisa::Status inside the command line.
#pragma once

#include "hisa/status.h"

#define HISA_TOOLS_RETURN_IF_ERROR(expr)                     \
  do {                                                       \
    ::hisa::Status hisa_tools_status_ = (expr);              \
    if (!hisa_tools_status_.ok()) return hisa_tools_status_; \
  } while (0)
