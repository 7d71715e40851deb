#include "table.h"

#include <algorithm>

namespace hisa::tools {
namespace {

constexpr size_t kGap = 2;  // spaces between columns

std::string Pad(const std::string& text, size_t width, Table::Align align) {
  if (text.size() >= width) return text;
  const std::string fill(width - text.size(), ' ');
  return align == Table::Align::kLeft ? text + fill : fill + text;
}

void TrimRight(std::string* line) {
  while (!line->empty() && line->back() == ' ') line->pop_back();
}

}  // namespace

void Table::AddColumn(std::string header, Align align, std::string group) {
  columns_.push_back({std::move(header), align, std::move(group)});
}

void Table::AddRow(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::Render() const {
  std::vector<size_t> widths(columns_.size());
  for (size_t c = 0; c < columns_.size(); ++c) {
    widths[c] = columns_[c].header.size();
    for (const auto& row : rows_) widths[c] = std::max(widths[c], row[c].size());
  }
  // Widen the last column of a group whose label is longer than its columns.
  for (size_t c = 0; c < columns_.size();) {
    size_t end = c + 1;
    while (end < columns_.size() && columns_[end].group == columns_[c].group) ++end;
    size_t span = (end - c - 1) * kGap;
    for (size_t i = c; i < end; ++i) span += widths[i];
    const size_t label = columns_[c].group.size() + 2;
    if (!columns_[c].group.empty() && label > span) widths[end - 1] += label - span;
    c = end;
  }

  std::string out;
  const bool has_groups = std::any_of(columns_.begin(), columns_.end(),
                                      [](const Column& col) { return !col.group.empty(); });
  if (has_groups) {
    // "---- IoU % ----" over the columns of each group.
    std::string line;
    for (size_t c = 0; c < columns_.size();) {
      size_t end = c + 1;
      while (end < columns_.size() && columns_[end].group == columns_[c].group) ++end;
      size_t span = (end - c - 1) * kGap;
      for (size_t i = c; i < end; ++i) span += widths[i];
      if (c > 0) line += std::string(kGap, ' ');
      if (columns_[c].group.empty()) {
        line += std::string(span, ' ');
      } else {
        const std::string label = " " + columns_[c].group + " ";
        const size_t left = (span - label.size()) / 2;
        line += std::string(left, '-') + label + std::string(span - left - label.size(), '-');
      }
      c = end;
    }
    TrimRight(&line);
    out += line + "\n";
  }
  const auto render_row = [&](const auto& cell_of) {
    std::string line;
    for (size_t c = 0; c < columns_.size(); ++c) {
      if (c > 0) line += std::string(kGap, ' ');
      line += Pad(cell_of(c), widths[c], columns_[c].align);
    }
    TrimRight(&line);
    out += line + "\n";
  };
  render_row([&](size_t c) { return columns_[c].header; });
  for (const auto& row : rows_) render_row([&](size_t c) { return row[c]; });
  return out;
}

}  // namespace hisa::tools
