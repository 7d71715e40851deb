// hisa: error reporting for every public entry point.
#pragma once

#include <string>
#include <utility>

namespace hisa {

/// Why a call failed.
enum class StatusCode {
  kOk = 0,
  kInvalidArgument,  ///< a shape, pointer, range or option is wrong; the message names it
  kUnsupported,      ///< valid request this build or device cannot serve (e.g. CUDA not built)
  kOutOfMemory,      ///< an allocation failed
  kDeviceError,      ///< a CUDA call failed; the message carries the CUDA error string
  kInternal,         ///< a bug in hisa
};

/// Result of a call: ok, or a code with a message that names the argument and its value.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

  /// "ok" or "<code name>: <message>".
  std::string ToString() const;

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

/// Name of a status code ("invalid argument", ...).
const char* StatusCodeName(StatusCode code);

}  // namespace hisa
