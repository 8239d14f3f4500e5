#include "server/jobs/sql/postgres_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace selene::jobs::sql {
namespace {

// Type oids from PostgreSQL's catalog (pg_type.dat); stable across releases, and libpq does not
// export them to clients.
constexpr Oid kBoolOid = 16;
constexpr Oid kByteaOid = 17;
constexpr Oid kNameOid = 19;
constexpr Oid kInt8Oid = 20;
constexpr Oid kInt2Oid = 21;
constexpr Oid kInt4Oid = 23;
constexpr Oid kTextOid = 25;
constexpr Oid kOidOid = 26;
constexpr Oid kFloat4Oid = 700;
constexpr Oid kFloat8Oid = 701;
constexpr Oid kBpcharOid = 1042;
constexpr Oid kVarcharOid = 1043;
constexpr Oid kVoidOid = 2278;  // what pg_notify() returns

constexpr int kBinary = 1;

// Binary values are in network byte order.
void AppendBigEndian(uint64_t value, int bytes, std::string* out) {
  for (int shift = 8 * (bytes - 1); shift >= 0; shift -= 8) {
    out->push_back(static_cast<char>((value >> shift) & 0xff));
  }
}

uint64_t ReadBigEndian(const char* data, int bytes) {
  uint64_t value = 0;
  for (int i = 0; i < bytes; ++i) value = (value << 8) | static_cast<unsigned char>(data[i]);
  return value;
}

// libpq's messages span lines (a tab-indented hint under the error): one line for a Status.
std::string OneLine(absl::string_view text) {
  std::string line;
  bool space = false;
  for (char c : text) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) {
      space = true;
      continue;
    }
    if (space && !line.empty()) line.push_back(' ');
    space = false;
    line.push_back(c);
  }
  return line;
}

// The statement's first line names it in messages; the whole of a long one would drown the
// error.
std::string Statement(absl::string_view sql) {
  sql = absl::StripLeadingAsciiWhitespace(sql);
  sql = sql.substr(0, sql.find('\n'));
  sql = absl::StripTrailingAsciiWhitespace(sql);
  constexpr size_t kMax = 120;
  if (sql.size() > kMax) return absl::StrCat(sql.substr(0, kMax), "...");
  return std::string(sql);
}

// What the server or libpq said about a failed statement, with the SQLSTATE when there is one.
std::string ResultMessage(const PGresult* result) {
  const char* primary = PQresultErrorField(result, PG_DIAG_MESSAGE_PRIMARY);
  if (primary == nullptr) return OneLine(PQresultErrorMessage(result));
  std::string message = primary;
  if (const char* detail = PQresultErrorField(result, PG_DIAG_MESSAGE_DETAIL)) {
    absl::StrAppend(&message, ": ", detail);
  }
  if (const char* hint = PQresultErrorField(result, PG_DIAG_MESSAGE_HINT)) {
    absl::StrAppend(&message, " (hint: ", hint, ")");
  }
  if (const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE)) {
    absl::StrAppend(&message, " [SQLSTATE ", state, "]");
  }
  return OneLine(message);
}

StatusCode CodeFor(absl::string_view state) {
  // 08: connection exception; 57P01-57P03: the server is shutting down, crashed or starting.
  if (absl::StartsWith(state, "08") || state == "57P01" || state == "57P02" || state == "57P03") {
    return StatusCode::kUnavailable;
  }
  if (state == "40001" || state == "40P01") return StatusCode::kAborted;  // serialization, deadlock
  if (state == "23505") return StatusCode::kAlreadyExists;                // unique violation
  if (absl::StartsWith(state, "53")) return StatusCode::kResourceExhausted;  // disk full, memory
  return StatusCode::kInternal;
}

// The server's notices (e.g. "relation already exists, skipping" from a migration's CREATE ...
// IF NOT EXISTS) are not errors; libpq would print them on stderr.
void IgnoreNotice(void*, const char*) {}

// Binary parameters for PQexecParams. The values point into `storage`, filled first so no
// pointer moves.
struct Parameters {
  explicit Parameters(const std::vector<SqlValue>& params) {
    const size_t n = params.size();
    storage.resize(n);
    types.resize(n, 0);
    lengths.resize(n, 0);
    formats.resize(n, kBinary);
    values.resize(n, nullptr);
    for (size_t i = 0; i < n; ++i) {
      const SqlValue& param = params[i];
      if (const auto* integer = std::get_if<int64_t>(&param)) {
        types[i] = kInt8Oid;
        AppendBigEndian(static_cast<uint64_t>(*integer), 8, &storage[i]);
      } else if (const auto* real = std::get_if<double>(&param)) {
        uint64_t bits = 0;
        static_assert(sizeof(bits) == sizeof(*real));
        std::memcpy(&bits, real, sizeof(bits));
        types[i] = kFloat8Oid;
        AppendBigEndian(bits, 8, &storage[i]);
      } else if (const auto* text = std::get_if<std::string>(&param)) {
        types[i] = kTextOid;  // a text value's binary form is its bytes
        storage[i] = *text;
      } else if (const auto* blob = std::get_if<Blob>(&param)) {
        types[i] = kByteaOid;
        storage[i] = blob->bytes;
      } else {
        continue;  // NULL: no value, type 0 (the server infers it from the context)
      }
      lengths[i] = static_cast<int>(storage[i].size());
    }
    for (size_t i = 0; i < n; ++i) {
      if (!std::holds_alternative<std::monostate>(params[i])) values[i] = storage[i].data();
    }
  }

  std::vector<std::string> storage;
  std::vector<Oid> types;
  std::vector<const char*> values;
  std::vector<int> lengths;
  std::vector<int> formats;
};

// One binary result cell as a SqlValue; false for a type the store does not read.
bool ReadCell(Oid type, const char* data, int length, SqlValue* out) {
  auto integer = [&](int bytes) {
    if (length != bytes) return false;
    const uint64_t bits = ReadBigEndian(data, bytes);
    // Sign-extend from `bytes` wide (oid is unsigned and 4 bytes wide: read it as int8 would).
    if (bytes == 2) *out = static_cast<int64_t>(static_cast<int16_t>(bits));
    if (bytes == 4) *out = static_cast<int64_t>(static_cast<int32_t>(bits));
    if (bytes == 8) *out = static_cast<int64_t>(bits);
    return true;
  };
  switch (type) {
    case kInt2Oid:
      return integer(2);
    case kInt4Oid:
      return integer(4);
    case kInt8Oid:
      return integer(8);
    case kOidOid:
      if (length != 4) return false;
      *out = static_cast<int64_t>(ReadBigEndian(data, 4));
      return true;
    case kBoolOid:
      if (length != 1) return false;
      *out = static_cast<int64_t>(data[0] != 0);
      return true;
    case kFloat4Oid: {
      if (length != 4) return false;
      const uint32_t bits = static_cast<uint32_t>(ReadBigEndian(data, 4));
      float value = 0;
      std::memcpy(&value, &bits, sizeof(value));
      *out = static_cast<double>(value);
      return true;
    }
    case kFloat8Oid: {
      if (length != 8) return false;
      const uint64_t bits = ReadBigEndian(data, 8);
      double value = 0;
      std::memcpy(&value, &bits, sizeof(value));
      *out = value;
      return true;
    }
    case kByteaOid:
      *out = Blob{std::string(data, length)};
      return true;
    case kTextOid:
    case kVarcharOid:
    case kBpcharOid:
    case kNameOid:
      *out = std::string(data, length);
      return true;
    case kVoidOid:
      *out = std::monostate{};
      return true;
    default:
      return false;
  }
}

// Frees a PGresult on every path.
struct ResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
using Result = std::unique_ptr<PGresult, ResultDeleter>;

bool IsUri(absl::string_view uri) {
  return absl::StartsWith(uri, "postgresql://") || absl::StartsWith(uri, "postgres://");
}

// A key=value connection string's value, quoted when it must be.
std::string QuoteValue(absl::string_view value) {
  if (!value.empty() && value.find_first_of(" \t\n'\\") == absl::string_view::npos) {
    return std::string(value);
  }
  std::string quoted = "'";
  for (char c : value) {
    if (c == '\'' || c == '\\') quoted.push_back('\\');
    quoted.push_back(c);
  }
  quoted.push_back('\'');
  return quoted;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A URI parameter's name as libpq reads it ("pass%77ord" is "password").
std::string PercentDecode(absl::string_view text) {
  std::string decoded;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() && HexDigit(text[i + 1]) >= 0 &&
        HexDigit(text[i + 2]) >= 0) {
      decoded.push_back(static_cast<char>(HexDigit(text[i + 1]) * 16 + HexDigit(text[i + 2])));
      i += 2;
    } else {
      decoded.push_back(text[i]);
    }
  }
  return decoded;
}

}  // namespace

std::string RedactPostgresUri(const std::string& uri) {
  if (!IsUri(uri)) {
    // key=value: rebuilt from what libpq parses, less the password. One that does not parse is
    // not shown at all: where its password ends is unknown.
    PQconninfoOption* options = PQconninfoParse(uri.c_str(), nullptr);
    if (options == nullptr) return "(a PostgreSQL connection string that does not parse)";
    std::vector<std::string> pairs;
    for (const PQconninfoOption* option = options; option->keyword != nullptr; ++option) {
      if (option->val == nullptr || std::strcmp(option->keyword, "password") == 0) continue;
      pairs.push_back(absl::StrCat(option->keyword, "=", QuoteValue(option->val)));
    }
    PQconninfoFree(options);
    return absl::StrJoin(pairs, " ");
  }
  // scheme://[user[:password]@][hosts][/dbname][?params]. libpq takes the first '@' before any
  // '/' as the end of the credentials; so do we.
  const size_t authority = uri.find("://") + 3;
  std::string redacted = uri.substr(0, authority);
  size_t rest = authority;
  const size_t at = uri.find_first_of("@/", authority);
  if (at != std::string::npos && uri[at] == '@') {
    const absl::string_view userinfo(uri.data() + authority, at - authority);
    redacted += std::string(userinfo.substr(0, userinfo.find(':'))) + "@";
    rest = at + 1;
  }
  const size_t query = uri.find('?', rest);
  if (query == std::string::npos) return redacted + uri.substr(rest);
  redacted += uri.substr(rest, query + 1 - rest);
  std::vector<absl::string_view> kept;
  for (absl::string_view param : absl::StrSplit(absl::string_view(uri).substr(query + 1), '&')) {
    if (PercentDecode(param.substr(0, param.find('='))) == "password") continue;
    kept.push_back(param);
  }
  redacted += absl::StrJoin(kept, "&");
  if (kept.empty()) redacted.pop_back();  // the '?'
  return redacted;
}

StatusOr<PGconn*> ConnectPostgres(const std::string& uri, const std::string& password) {
  const std::string location = RedactPostgresUri(uri);
  char* parse_error = nullptr;
  PQconninfoOption* options = PQconninfoParse(uri.c_str(), &parse_error);
  if (options == nullptr) {
    std::string message = parse_error != nullptr ? OneLine(parse_error) : "out of memory";
    PQfreemem(parse_error);
    return absl::InvalidArgumentError(
        absl::StrCat("job store ", location, ": parsing the connection URI: ", message));
  }
  PQconninfoFree(options);  // parsed only to tell a malformed URI from an unreachable server

  // Defaults first, so the URI's own settings override them; the password last, so it
  // overrides the URI's. A server that does not answer fails the connect after 10 s instead of
  // the OS's minutes; keepalives find a TCP connection whose server vanished while it sat idle.
  std::vector<const char*> keywords = {"connect_timeout",           "keepalives_idle",
                                       "keepalives_interval",       "keepalives_count",
                                       "fallback_application_name", "dbname"};
  std::vector<const char*> values = {"10", "30", "10", "3", "selene", uri.c_str()};
  if (!password.empty()) {
    keywords.push_back("password");
    values.push_back(password.c_str());
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("job store ", location, ": connecting: out of memory"));
  }
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string message = OneLine(PQerrorMessage(conn));
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat("job store ", location, ": connecting: ", message));
  }
  PQsetNoticeProcessor(conn, IgnoreNotice, nullptr);
  return conn;
}

StatusOr<std::unique_ptr<PostgresConnection>> PostgresConnection::Open(
    const std::string& uri, const std::string& password) {
  SELENE_ASSIGN_OR_RETURN(PGconn * conn, ConnectPostgres(uri, password));
  return std::unique_ptr<PostgresConnection>(new PostgresConnection(conn, RedactPostgresUri(uri)));
}

PostgresConnection::PostgresConnection(PGconn* conn, std::string location)
    : conn_(conn), location_(std::move(location)) {}

PostgresConnection::~PostgresConnection() { PQfinish(conn_); }

const SqlDialect& PostgresConnection::dialect() const {
  // Leases are timed by the server's clock (clock_timestamp(): the time now, not the
  // transaction's start); job changes go to the other servers' PostgresListener at commit.
  static const SqlDialect* const kDialect = new SqlDialect{
      /*engine=*/"postgresql",
      /*lock_rows=*/" FOR UPDATE",
      /*skip_locked=*/" FOR UPDATE OF j SKIP LOCKED",
      /*next_job_number=*/"SELECT nextval('job_number')",
      /*now_ms=*/"CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS bigint)",
      /*notify=*/"SELECT pg_notify('selene_jobs', $1)",
  };
  return *kDialect;
}

Status PostgresConnection::EnsureConnected(absl::string_view doing) {
  // A server that restarted closed this connection while it sat idle, after a last message
  // saying why (57P01), and libpq learns of the close only by reading past that message. Read
  // while the socket has something (never blocking) until the end of the stream marks the
  // connection bad or nothing is left; a few reads are plenty.
  for (int reads = 0; reads < 8 && PQstatus(conn_) == CONNECTION_OK; ++reads) {
    pollfd socket = {PQsocket(conn_), POLLIN, 0};
    if (::poll(&socket, 1, /*timeout=*/0) <= 0) break;
    PQconsumeInput(conn_);
  }
  if (PQstatus(conn_) == CONNECTION_OK) return OkStatus();
  PQreset(conn_);
  if (PQstatus(conn_) == CONNECTION_OK) return OkStatus();
  return absl::UnavailableError(absl::StrCat("job store ", location_, ": ", doing,
                                             ": reconnecting: ", OneLine(PQerrorMessage(conn_))));
}

Status PostgresConnection::Error(const PGresult* result, absl::string_view doing) const {
  std::string message;
  StatusCode code = StatusCode::kInternal;
  if (result == nullptr) {
    message = OneLine(PQerrorMessage(conn_));
  } else {
    message = ResultMessage(result);
    if (const char* state = PQresultErrorField(result, PG_DIAG_SQLSTATE)) code = CodeFor(state);
  }
  if (PQstatus(conn_) != CONNECTION_OK) code = StatusCode::kUnavailable;
  return Status(code, absl::StrCat("job store ", location_, ": ", doing, ": ", message));
}

Status PostgresConnection::Exec(const std::string& sql, absl::string_view doing) {
  Result result(PQexec(conn_, sql.c_str()));
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY) {
    return OkStatus();
  }
  return Error(result.get(), doing);
}

Status PostgresConnection::Begin(TransactionMode /*mode*/) {
  constexpr absl::string_view kDoing = "beginning a transaction";
  if (in_transaction_) {
    return absl::FailedPreconditionError(
        absl::StrCat("job store ", location_, ": ", kDoing, ": one is already open"));
  }
  const std::string begin = "BEGIN ISOLATION LEVEL READ COMMITTED";
  SELENE_RETURN_IF_ERROR(EnsureConnected(kDoing));
  Status status = Exec(begin, kDoing);
  if (!status.ok() && PQstatus(conn_) != CONNECTION_OK) {
    // Lost after the check: BEGIN did nothing yet, so reconnecting and sending it again is safe.
    SELENE_RETURN_IF_ERROR(EnsureConnected(kDoing));
    status = Exec(begin, kDoing);
  }
  SELENE_RETURN_IF_ERROR(status);
  in_transaction_ = true;
  return OkStatus();
}

Status PostgresConnection::Commit() {
  constexpr absl::string_view kDoing = "committing";
  if (!in_transaction_) {
    return absl::FailedPreconditionError(
        absl::StrCat("job store ", location_, ": ", kDoing, ": no transaction is open"));
  }
  in_transaction_ = false;  // ended whatever happens: committed, rolled back, or connection lost
  Result result(PQexec(conn_, "COMMIT"));
  if (result == nullptr || PQresultStatus(result.get()) != PGRES_COMMAND_OK) {
    return Error(result.get(), kDoing);
  }
  if (std::strcmp(PQcmdStatus(result.get()), "ROLLBACK") == 0) {
    return absl::InternalError(
        absl::StrCat("job store ", location_, ": ", kDoing,
                     ": the transaction had failed and was rolled back instead"));
  }
  return OkStatus();
}

void PostgresConnection::Rollback() {
  in_transaction_ = false;
  if (PQstatus(conn_) != CONNECTION_OK) return;  // the server ended the transaction with it
  Result result(PQexec(conn_, "ROLLBACK"));
}

StatusOr<SqlRows> PostgresConnection::Query(absl::string_view sql,
                                            const std::vector<SqlValue>& params) {
  const std::string doing = absl::StrCat("running ", Statement(sql));
  if (!in_transaction_) SELENE_RETURN_IF_ERROR(EnsureConnected(doing));
  const Parameters parameters(params);
  Result result(PQexecParams(conn_, std::string(sql).c_str(), static_cast<int>(params.size()),
                             parameters.types.data(), parameters.values.data(),
                             parameters.lengths.data(), parameters.formats.data(), kBinary));
  const ExecStatusType status =
      result == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(result.get());
  if (status == PGRES_COMMAND_OK || status == PGRES_EMPTY_QUERY) return SqlRows();
  if (status != PGRES_TUPLES_OK) return Error(result.get(), doing);

  const int rows = PQntuples(result.get());
  const int columns = PQnfields(result.get());
  SqlRows out;
  out.reserve(rows);
  for (int row = 0; row < rows; ++row) {
    std::vector<SqlValue> cells(columns);
    for (int column = 0; column < columns; ++column) {
      if (PQgetisnull(result.get(), row, column)) continue;
      const Oid type = PQftype(result.get(), column);
      if (!ReadCell(type, PQgetvalue(result.get(), row, column),
                    PQgetlength(result.get(), row, column), &cells[column])) {
        return absl::InternalError(absl::StrCat(
            "job store ", location_, ": ", doing, ": column ", column + 1, " (",
            PQfname(result.get(), column), ") has type oid ", type,
            ", which the job store does not read: cast it to bigint, double precision or text"));
      }
    }
    out.emplace_back(std::move(cells));
  }
  return out;
}

Status PostgresConnection::ExecScript(absl::string_view sql) {
  const std::string doing = absl::StrCat("running the script ", Statement(sql));
  if (!in_transaction_) SELENE_RETURN_IF_ERROR(EnsureConnected(doing));
  return Exec(std::string(sql), doing);
}

bool PostgresConnection::IsRetryable(const Status& status) const {
  return status.code() == StatusCode::kUnavailable || status.code() == StatusCode::kAborted;
}

}  // namespace selene::jobs::sql
