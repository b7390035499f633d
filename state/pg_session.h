// A PostgreSQL connection for state/: libpq behind RAII, statements prepared once per connection
// and run with bound values, transactions, and errors mapped to Status codes with the password
// masked. Internal to state/ (the store backend, the tenant registry and the shared rate budgets)
// and its tests.
//
// Not thread-safe: its owner serialises calls (a mutex per connection).
#pragma once

#include <libpq-fe.h>

#include <charconv>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "src/core/status.h"

namespace crmbridge::pg {

// What the caller should do next (the codes of src/core/status.h), by SQLSTATE.
inline StatusCode CodeForSqlstate(std::string_view state) {
  if (state == "23505") return StatusCode::kAlreadyExists;  // unique_violation
  if (state == "40001" || state == "40P01" ||  // serialization failure, deadlock: retry later
      state == "55P03" ||                       // lock_not_available: lock_timeout ran out
      state == "57014" ||                       // query_canceled (statement_timeout)
      state == "53300" ||                       // too_many_connections
      state.rfind("57P", 0) == 0 ||             // the server is shutting down or restarting
      state.rfind("08", 0) == 0)                // connection exceptions
    return StatusCode::kUnavailable;
  if (state.rfind("22", 0) == 0 || state.rfind("23", 0) == 0 || state.rfind("54", 0) == 0)
    return StatusCode::kInvalidArgument;  // data exceptions, constraints, values too large
  if (state.rfind("53", 0) == 0) return StatusCode::kResourceExhausted;  // disk full, memory
  if (state.rfind("28", 0) == 0 ||  // invalid authorization
      state == "42501" ||           // insufficient_privilege
      state == "3D000" || state == "3F000" ||  // no such database or schema
      state == "25006" ||           // read_only_sql_transaction: a standby
      state.rfind("58", 0) == 0 || state.rfind("XX", 0) == 0)  // I/O errors, corruption
    return StatusCode::kFailedPrecondition;  // needs someone's attention; retrying won't fix it
  return StatusCode::kInternal;
}

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

struct ConnDeleter {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnDeleter>;

struct ConninfoDeleter {
  void operator()(PQconninfoOption* o) const { PQconninfoFree(o); }
};
using ConninfoPtr = std::unique_ptr<PQconninfoOption, ConninfoDeleter>;

inline std::string TrimEnd(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The parsed connection string, or nullptr when it does not parse. libpq's reason is not kept:
// it may quote a piece of the string, and with it of the password.
inline ConninfoPtr ParseConninfo(const std::string& url) {
  char* err = nullptr;
  ConninfoPtr options(PQconninfoParse(url.c_str(), &err));
  PQfreemem(err);
  return options;
}

inline std::string ConninfoValue(const PQconninfoOption* options, const char* keyword) {
  for (const PQconninfoOption* o = options; o != nullptr && o->keyword != nullptr; ++o)
    if (std::strcmp(o->keyword, keyword) == 0 && o->val != nullptr) return o->val;
  return std::string();
}

// `text` with every occurrence of `password` masked. libpq and the server do not quote passwords;
// this keeps it so should either ever start to. A password shorter than the Redactor's minimum
// is left alone, as the Redactor does: masking "pw" everywhere would shred the messages.
std::string MaskPassword(std::string text, const std::string& password);

// A query's rows, read as text (every value is requested in text format).
class Rows {
 public:
  explicit Rows(ResultPtr result) : r_(std::move(result)) {}

  int size() const { return PQntuples(r_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string_view View(int row, int col) const {
    return std::string_view(PQgetvalue(r_.get(), row, col),
                            static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  std::string Text(int row, int col) const { return std::string(View(row, col)); }
  int64_t Int(int row, int col) const {
    const std::string_view v = View(row, col);
    int64_t out = 0;
    std::from_chars(v.data(), v.data() + v.size(), out);
    return out;
  }
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t Affected() const {
    const char* n = PQcmdTuples(r_.get());
    int64_t out = 0;
    std::from_chars(n, n + std::strlen(n), out);
    return out;
  }

 private:
  ResultPtr r_;
};

// The values of one statement, $1, $2, ... in the order added, all in text format. A value
// PostgreSQL text cannot hold (a NUL byte) makes the statement fail before it is sent, rather
// than be cut short at the NUL.
class Params {
 public:
  Params& Text(const std::string& v) {
    if (v.find('\0') != std::string::npos && problem_.empty())
      problem_ = "value " + std::to_string(values_.size() + 1) +
                 " holds a NUL byte, which PostgreSQL text cannot store";
    values_.push_back(v);
    nulls_.push_back(false);
    return *this;
  }
  // NULL for "", for columns where "no value yet" must not collide on a UNIQUE key.
  Params& TextOrNull(const std::string& v) { return v.empty() ? Null() : Text(v); }
  Params& Null() {
    values_.emplace_back();
    nulls_.push_back(true);
    return *this;
  }
  Params& Int(int64_t v) { return Text(std::to_string(v)); }
  Params& Bool(bool v) { return Text(v ? "true" : "false"); }

  int size() const { return static_cast<int>(values_.size()); }
  const std::string& problem() const { return problem_; }
  std::vector<const char*> Pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (size_t i = 0; i < values_.size(); ++i)
      out.push_back(nulls_[i] ? nullptr : values_[i].c_str());
    return out;
  }

 private:
  std::vector<std::string> values_;
  std::vector<bool> nulls_;
  std::string problem_;
};

// One connection. `label` starts every error message ("state store postgresql://host/db").
class Session {
 public:
  // Connects to `url` (a libpq connection string or postgresql:// URL); `what` names it in the
  // refusal ("the PostgreSQL state store"). The password is registered with the global Redactor
  // and masked in every message. kInvalidArgument for a url that does not parse,
  // kFailedPrecondition when the server cannot be reached or refuses the login.
  static Result<std::unique_ptr<Session>> Open(const std::string& url, int connect_timeout_s,
                                               const std::string& what, const std::string& label);

  PGconn* conn() const { return conn_.get(); }
  const std::string& shown() const { return shown_; }
  const std::string& password() const { return password_; }
  // `text` with the password masked.
  std::string Scrub(std::string text) const { return MaskPassword(std::move(text), password_); }
  // The Status of a failed statement: its SQLSTATE's code, the server's message, `doing`.
  Status Error(const PGresult* result, const std::string& doing) const;
  // Reconnects a connection that was lost; true when it had to (the caller configures it again).
  Result<bool> Reconnect();
  // A statement without values (BEGIN, COMMIT, SET, a migration's several statements).
  Status ExecPlain(const char* sql, const std::string& doing);
  // Prepares `sql` on first use on this connection, then runs it with `params`.
  Result<Rows> Run(const std::string& sql, const Params& params, const std::string& doing);
  // BEGIN (`begin`), body, COMMIT; ROLLBACK when anything fails.
  Status InTransaction(const char* begin, const std::string& doing,
                       const std::function<Status()>& body);

  // Pipelining (libpq's pipeline mode), for the many write statements of one transaction whose
  // answers are only their errors: one round trip for them all instead of one each.
  //   BeginPipeline()   inside a transaction (after BEGIN)
  //   Send(...)         queues a statement; its answer is read later. `tag` names who sent it
  //                     (the batch op), for the error
  //   Run(...)          while pipelining: sends what is queued with it and reads every answer
  //   EndPipeline()     reads what is left and leaves pipeline mode (before COMMIT or ROLLBACK)
  // The first statement that fails stands for all: the ones after it are not run, and its error
  // is what Run or EndPipeline returns, with its tag in failed_tag(). Outside pipeline mode, Send
  // is Run without its rows.
  Status BeginPipeline();
  Status Send(const std::string& sql, const Params& params, const std::string& doing, int tag);
  Status EndPipeline();
  bool pipelining() const { return pipelining_; }
  int failed_tag() const { return failed_tag_; }

  Session(ConnPtr conn, std::string shown, std::string password, std::string label)
      : conn_(std::move(conn)), shown_(std::move(shown)), password_(std::move(password)),
        label_(std::move(label)) {}

 private:
  ConnPtr conn_;
  const std::string shown_;     // the url without its password
  const std::string password_;  // to mask, should anything quote it
  const std::string label_;
  std::unordered_map<std::string, std::string> prepared_;  // SQL -> statement name

  // A statement sent in pipeline mode and not yet answered.
  struct Pending {
    std::string doing;
    int tag = -1;
    std::string prepared_sql;  // for a prepare: the SQL, forgotten again when it fails
  };
  // Sends the statement (preparing it first, in the pipeline, when new).
  Status SendLocked(const std::string& sql, const Params& params, const std::string& doing,
                    int tag);
  // Sends a sync and reads every answer; the last statement's rows into *last when given.
  Status Drain(ResultPtr* last);
  // Past this many statements unanswered, Send drains: the server's answers must never fill the
  // socket while crmbridge is still sending (both would wait on the other).
  static constexpr size_t kMaxPending = 256;
  bool pipelining_ = false;
  int failed_tag_ = -1;
  std::vector<Pending> pending_;
};

// `url` as errors and logs show it: a postgresql:// URL without its user info and credential
// parameters, a "key=value" string as its host, port, database and user only.
std::string ShownUrl(const std::string& url);

// A lowercase SQL name crmbridge may splice into a statement as a quoted identifier: letters a-z,
// digits and _, starting with a letter or _, at most 63 bytes.
bool IsSqlName(const std::string& name);

}  // namespace crmbridge::pg
