#include "server/jobs/sql/sql_connection.h"

namespace selene::jobs::sql {
namespace {

const SqlValue* Cell(const std::vector<SqlValue>& cells, int column) {
  if (column < 0 || column >= static_cast<int>(cells.size())) return nullptr;
  return &cells[column];
}

}  // namespace

int64_t SqlRow::Int(int column) const {
  const SqlValue* cell = Cell(cells_, column);
  if (cell == nullptr) return 0;
  if (const auto* value = std::get_if<int64_t>(cell)) return *value;
  if (const auto* value = std::get_if<double>(cell)) return static_cast<int64_t>(*value);
  return 0;
}

double SqlRow::Double(int column) const {
  const SqlValue* cell = Cell(cells_, column);
  if (cell == nullptr) return 0;
  if (const auto* value = std::get_if<double>(cell)) return *value;
  if (const auto* value = std::get_if<int64_t>(cell)) return static_cast<double>(*value);
  return 0;
}

std::string SqlRow::Text(int column) const {
  const SqlValue* cell = Cell(cells_, column);
  if (cell == nullptr) return "";
  if (const auto* value = std::get_if<std::string>(cell)) return *value;
  return "";
}

std::string SqlRow::Bytes(int column) const {
  const SqlValue* cell = Cell(cells_, column);
  if (cell == nullptr) return "";
  if (const auto* value = std::get_if<Blob>(cell)) return value->bytes;
  if (const auto* value = std::get_if<std::string>(cell)) return *value;
  return "";
}

bool SqlRow::IsNull(int column) const {
  const SqlValue* cell = Cell(cells_, column);
  return cell == nullptr || std::holds_alternative<std::monostate>(*cell);
}

}  // namespace selene::jobs::sql
