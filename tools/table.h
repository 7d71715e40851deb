// Fixed-width text tables for the command line's reports.
#pragma once

#include <string>
#include <vector>

namespace hisa::tools {

/// Columns with a header (units in the header: "flat ms", "IoU mean %"), an alignment and an
/// optional group label printed centred above consecutive columns that share it.
class Table {
 public:
  enum class Align { kLeft, kRight };

  void AddColumn(std::string header, Align align = Align::kRight, std::string group = "");
  /// One cell per column.
  void AddRow(std::vector<std::string> cells);

  /// The table, one line per row, each ending in '\n'.
  std::string Render() const;

 private:
  struct Column {
    std::string header;
    Align align;
    std::string group;
  };
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace hisa::tools
