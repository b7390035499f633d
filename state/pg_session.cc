// pg::Session: see state/pg_session.h.
#include "state/pg_session.h"

#include <cctype>
#include <cstring>

#include <spdlog/spdlog.h>

#include "src/core/logging.h"
#include "src/core/redaction.h"

namespace crmbridge::pg {

// `text` with every occurrence of `password` masked. libpq and the server do not quote passwords;
// this keeps it so should either ever start to. A password shorter than the Redactor's minimum
// is left alone, as the Redactor does: masking "pw" everywhere would shred the messages.
std::string MaskPassword(std::string text, const std::string& password) {
  if (password.size() < Redactor::kMinSecretLength) return text;
  for (size_t at = text.find(password); at != std::string::npos;
       at = text.find(password, at + Redactor::kMask.size()))
    text.replace(at, password.size(), Redactor::kMask);
  return text;
}

Status Session::Error(const PGresult* result, const std::string& doing) const {
  auto field = [&](int code) -> std::string {
    const char* v = result != nullptr ? PQresultErrorField(result, code) : nullptr;
    return v != nullptr ? v : "";
  };
  const std::string state = field(PG_DIAG_SQLSTATE);
  std::string message = field(PG_DIAG_MESSAGE_PRIMARY);
  if (message.empty()) message = TrimEnd(PQerrorMessage(conn_.get()));
  const std::string detail = field(PG_DIAG_MESSAGE_DETAIL);
  if (!detail.empty()) message += " (" + detail + ")";
  StatusCode code = CodeForSqlstate(state);
  // A connection lost mid-statement may carry no SQLSTATE at all: the next call reconnects.
  if (PQstatus(conn_.get()) == CONNECTION_BAD) code = StatusCode::kUnavailable;
  if (!state.empty()) message += " [SQLSTATE " + state + "]";
  return Status(code, Scrub(label_ + ": " + doing + ": " + message));
}

Status Session::ExecPlain(const char* sql, const std::string& doing) {
  ResultPtr r(PQexec(conn_.get(), sql));
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return Status::Ok();
  return Error(r.get(), doing);
}

Result<Rows> Session::Run(const std::string& sql, const Params& params,
                                const std::string& doing) {
  if (!params.problem().empty())
    return Status(StatusCode::kInvalidArgument, doing + ": " + params.problem());
  if (pipelining_) {
    // Its answer is needed now: it goes with everything queued, in one round trip.
    CRMB_RETURN_IF_ERROR(SendLocked(sql, params, doing, -1));
    ResultPtr last;
    CRMB_RETURN_IF_ERROR(Drain(&last));
    if (!last) return Status(StatusCode::kInternal, label_ + ": " + doing + ": no answer");
    return Rows(std::move(last));
  }
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "crmb_" + std::to_string(prepared_.size() + 1);
    ResultPtr r(PQprepare(conn_.get(), name.c_str(), sql.c_str(), params.size(), nullptr));
    if (!r || PQresultStatus(r.get()) != PGRES_COMMAND_OK) return Error(r.get(), doing);
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  const std::vector<const char*> values = params.Pointers();
  ResultPtr r(PQexecPrepared(conn_.get(), it->second.c_str(), params.size(), values.data(),
                             nullptr, nullptr, /*resultFormat=*/0));
  const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return Error(r.get(), doing);
  return Rows(std::move(r));
}

Status Session::InTransaction(const char* begin, const std::string& doing,
                                    const std::function<Status()>& body) {
  CRMB_RETURN_IF_ERROR(ExecPlain(begin, "starting a transaction for " + doing));
  Status s = body();
  if (s.ok()) {
    s = ExecPlain("COMMIT", "committing " + doing);
    if (s.ok()) return s;
  }
  const PGTransactionStatusType tx = PQtransactionStatus(conn_.get());
  if (tx == PQTRANS_INTRANS || tx == PQTRANS_INERROR) {
    Status r = ExecPlain("ROLLBACK", "rolling back " + doing);
    if (!r.ok()) return Status(s.code(), s.message() + "; and then " + r.message());
  }
  return s;
}

namespace {
// libpq prints notices to stderr unless told otherwise; they go to the debug log instead.
void LogNotice(void* /*arg*/, const char* message) {
  spdlog::debug("postgresql: {}", TrimEnd(message));
}
}  // namespace

Status Session::BeginPipeline() {
  failed_tag_ = -1;
  pending_.clear();
  if (PQenterPipelineMode(conn_.get()) != 1)
    return Status(StatusCode::kUnavailable,
                  Scrub(label_ + ": cannot pipeline: " + TrimEnd(PQerrorMessage(conn_.get()))));
  pipelining_ = true;
  return Status::Ok();
}

Status Session::SendLocked(const std::string& sql, const Params& params, const std::string& doing,
                           int tag) {
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = "crmb_" + std::to_string(prepared_.size() + 1);
    if (PQsendPrepare(conn_.get(), name.c_str(), sql.c_str(), params.size(), nullptr) != 1)
      return Error(nullptr, doing);
    pending_.push_back({doing, tag, sql});
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  const std::vector<const char*> values = params.Pointers();
  if (PQsendQueryPrepared(conn_.get(), it->second.c_str(), params.size(), values.data(), nullptr,
                          nullptr, /*resultFormat=*/0) != 1)
    return Error(nullptr, doing);
  pending_.push_back({doing, tag, ""});
  return Status::Ok();
}

Status Session::Send(const std::string& sql, const Params& params, const std::string& doing,
                     int tag) {
  if (!pipelining_) return Run(sql, params, doing).status();
  if (!params.problem().empty()) {
    failed_tag_ = tag;
    return Status(StatusCode::kInvalidArgument, doing + ": " + params.problem());
  }
  CRMB_RETURN_IF_ERROR(SendLocked(sql, params, doing, tag));
  if (pending_.size() >= kMaxPending) return Drain(nullptr);
  return Status::Ok();
}

Status Session::Drain(ResultPtr* last) {
  if (PQpipelineSync(conn_.get()) != 1) return Error(nullptr, "sending a pipeline sync");
  Status first;
  for (size_t i = 0; i < pending_.size(); ++i) {
    const Pending& p = pending_[i];
    ResultPtr r(PQgetResult(conn_.get()));
    const ExecStatusType st = r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR;
    const bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    if (!ok && st != PGRES_PIPELINE_ABORTED && first.ok()) {
      first = Error(r.get(), p.doing);
      failed_tag_ = p.tag;
    }
    if (!ok && !p.prepared_sql.empty()) prepared_.erase(p.prepared_sql);
    // Each statement's answers end with a null result.
    if (r) {
      ResultPtr end(PQgetResult(conn_.get()));
      if (end) return Error(end.get(), "reading a pipelined answer");
    }
    if (ok && last != nullptr && i + 1 == pending_.size()) *last = std::move(r);
  }
  pending_.clear();
  ResultPtr sync(PQgetResult(conn_.get()));
  if (!sync || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC)
    return first.ok() ? Error(sync.get(), "reading the end of a pipeline") : first;
  return first;
}

Status Session::EndPipeline() {
  if (!pipelining_) return Status::Ok();
  Status s = pending_.empty() ? Status::Ok() : Drain(nullptr);
  pipelining_ = false;
  if (PQexitPipelineMode(conn_.get()) != 1 && s.ok())
    s = Status(StatusCode::kUnavailable,
               Scrub(label_ + ": cannot leave pipeline mode: " + TrimEnd(PQerrorMessage(conn_.get()))));
  return s;
}

Result<bool> Session::Reconnect() {
  if (PQstatus(conn_.get()) == CONNECTION_OK) return false;
  // The statements prepared on the lost connection are gone with it.
  prepared_.clear();
  PQreset(conn_.get());
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    return Status(StatusCode::kUnavailable,
                  Scrub(label_ + ": the connection was lost and cannot be made again: " +
                        TrimEnd(PQerrorMessage(conn_.get()))));
  }
  return true;
}

Result<std::unique_ptr<Session>> Session::Open(const std::string& url, int connect_timeout_s,
                                               const std::string& what,
                                               const std::string& label) {
  const std::string shown = ShownUrl(url);
  ConninfoPtr parsed = ParseConninfo(url);
  if (!parsed) {
    return Status(StatusCode::kInvalidArgument,
                  what + " url " + shown +
                      " is not a PostgreSQL connection string or postgresql:// URL");
  }
  // Known from here on: should anything quote it, logs and messages mask it.
  const std::string password = ConninfoValue(parsed.get(), "password");
  if (!password.empty()) Redactor::Global().AddSecret(password);

  // Defaults before the url, so that it overrides them; the encoding after it: crmbridge reads
  // and writes UTF-8 whatever the server's default.
  const std::string timeout = std::to_string(connect_timeout_s);
  // TCP keepalives: a server cut off by a partition is noticed in about a minute, not the
  // system's two hours.
  const char* const keys[] = {"connect_timeout", "application_name", "keepalives",
                              "keepalives_idle", "keepalives_interval", "keepalives_count",
                              "dbname", "client_encoding", nullptr};
  const char* const values[] = {timeout.c_str(), "crmbridge", "1", "30", "10", "3",
                                url.c_str(), "UTF8", nullptr};
  ConnPtr conn(PQconnectdbParams(keys, values, /*expand_dbname=*/1));
  if (!conn) return Status(StatusCode::kInternal, "libpq could not allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return Status(StatusCode::kFailedPrecondition,
                  MaskPassword("cannot connect to " + what + " " + shown + ": " +
                                   TrimEnd(PQerrorMessage(conn.get())),
                               password));
  }
  // Kept by the connection across PQreset.
  PQsetNoticeProcessor(conn.get(), &LogNotice, nullptr);
  return std::make_unique<Session>(std::move(conn), shown, password, label + " " + shown);
}

std::string ShownUrl(const std::string& url) {
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0)
    return RedactUrlForLog(url);
  ConninfoPtr options = ParseConninfo(url);
  if (!options) return "(a connection string that does not parse)";
  std::string out;
  for (const char* keyword : {"host", "hostaddr", "port", "dbname", "user"}) {
    const std::string value = ConninfoValue(options.get(), keyword);
    if (value.empty()) continue;
    if (!out.empty()) out += ' ';
    out += std::string(keyword) + "=" + value;
  }
  return out.empty() ? "(the default PostgreSQL server)" : out;
}

bool IsSqlName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  if (!(std::islower(static_cast<unsigned char>(name[0])) || name[0] == '_')) return false;
  for (char c : name)
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_'))
      return false;
  return true;
}

}  // namespace crmbridge::pg
