#include "tests/state/postgres_cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

namespace crmbridge {
namespace store_test {
namespace {

namespace fs = std::filesystem;

constexpr const char* kSuperuser = "crmbridge";

std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool IsExecutable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

// The directory of initdb and postgres: pg_config's answer, else the newest of Debian's
// /usr/lib/postgresql/<major>/bin. "" when neither has them.
std::string FindBindir() {
  std::vector<std::string> candidates;
  if (FILE* p = ::popen("pg_config --bindir 2>/dev/null", "r")) {
    char buf[4096];
    std::string out;
    while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
    ::pclose(p);
    if (!Trim(out).empty()) candidates.push_back(Trim(out));
  }
  std::vector<std::pair<int, std::string>> versions;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.empty() && std::all_of(name.begin(), name.end(),
                                        [](unsigned char c) { return std::isdigit(c) != 0; }))
      versions.emplace_back(std::stoi(name), (entry.path() / "bin").string());
  }
  std::sort(versions.rbegin(), versions.rend());
  for (const auto& [version, dir] : versions) candidates.push_back(dir);
  for (const std::string& dir : candidates)
    if (IsExecutable(dir + "/initdb") && IsExecutable(dir + "/postgres")) return dir;
  return std::string();
}

// Who runs the server binaries: the postgres system user when we are root (PostgreSQL refuses to
// run as root), else ourselves.
struct RunAs {
  bool switch_user = false;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<RunAs> ServerUser() {
  RunAs as;
  if (::geteuid() != 0) return as;
  const struct passwd* pw = ::getpwnam("postgres");
  if (pw == nullptr) {
    return Status(StatusCode::kFailedPrecondition,
                  "running as root, and there is no postgres user to run the server as");
  }
  as.switch_user = true;
  as.uid = pw->pw_uid;
  as.gid = pw->pw_gid;
  return as;
}

// Starts `argv` as `as`, in `cwd`, its output appended to `log`. With `die_with_parent`, the
// child is sent SIGINT (a PostgreSQL fast shutdown) should this process die without stopping it.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& cwd,
                    const std::string& log, const RunAs& as, bool die_with_parent) {
  // Everything the child needs is made before fork: after it, only async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out < 0) return Status(StatusCode::kInternal, "cannot open " + log);
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(out);
    return Status(StatusCode::kInternal, "fork failed");
  }
  if (pid == 0) {
    ::dup2(out, STDOUT_FILENO);
    ::dup2(out, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    if (::chdir(cwd.c_str()) != 0) ::_exit(126);
    if (as.switch_user) {
      if (::setgroups(1, &as.gid) != 0 || ::setgid(as.gid) != 0 || ::setuid(as.uid) != 0)
        ::_exit(126);
    }
    // After setuid, which clears it.
    if (die_with_parent) {
      ::prctl(PR_SET_PDEATHSIG, SIGINT);
      if (::getppid() != parent) ::_exit(125);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out);
  return pid;
}

// Waits up to `timeout` for `pid`; its wait status, or nullopt while it still runs.
std::optional<int> WaitFor(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    const pid_t done = ::waitpid(pid, &status, WNOHANG);
    if (done == pid) return status;
    if (done < 0) return -1;  // not our child any more
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

// A TCP port of 127.0.0.1 that nothing listens on at the moment (the server may still lose it to
// another process before it binds: StartServer then tries another).
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

std::string RandomHex(size_t bytes) {
  std::ifstream random("/dev/urandom", std::ios::binary);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes; ++i) {
    const int c = random.get();
    out.push_back(kHex[(c >> 4) & 0xf]);
    out.push_back(kHex[c & 0xf]);
  }
  return out;
}

std::string PercentEncode(const std::string& s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

std::string ReadTail(const std::string& path, size_t max) {
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > max ? "..." + text.substr(text.size() - max) : text;
}

}  // namespace

PostgresCluster* PostgresCluster::Shared(std::string* why, bool* missing) {
  static std::string reason;
  static bool absent = false;
  // Destroyed at exit, which stops the server and removes its directory.
  static const std::unique_ptr<PostgresCluster> cluster = []() {
    std::unique_ptr<PostgresCluster> started;
    const std::string bindir = FindBindir();
    if (bindir.empty()) {
      absent = true;
      reason = "no PostgreSQL server binaries (initdb, postgres) found through pg_config or "
               "under /usr/lib/postgresql/*/bin: the PostgreSQL tests are SKIPPED. Install the "
               "postgresql package (scripts/setup.sh does) to run them.";
      std::fprintf(stderr, "\n*** %s\n\n", reason.c_str());
      return started;
    }
    started.reset(new PostgresCluster());
    Status s = started->Start(bindir);
    if (!s.ok()) {
      reason = "the test PostgreSQL server did not start: " + s.message();
      started.reset();
    }
    return started;
  }();
  if (cluster == nullptr) {
    if (why != nullptr) *why = reason;
    if (missing != nullptr) *missing = absent;
  }
  return cluster.get();
}

PostgresCluster::~PostgresCluster() { Stop(); }

Status PostgresCluster::Start(const std::string& bindir) {
  auto as = ServerUser();
  if (!as.ok()) return as.status();
  // The unix socket lives here too, and its path must stay short (108 bytes); as root, under
  // /tmp, which the postgres user can reach whatever TMPDIR says.
  std::string base = fs::temp_directory_path().string();
  if (as->switch_user || base.size() > 60) base = "/tmp";
  std::string tmpl = base + "/crmb-pg-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr)
    return Status(StatusCode::kInternal, "cannot create a directory under " + base);
  dir_ = tmpl;
  password_ = RandomHex(16);
  const std::string pwfile = dir_ + "/pwfile";
  {
    std::ofstream out(pwfile);
    out << password_ << "\n";
  }
  ::chmod(pwfile.c_str(), 0600);
  if (as->switch_user) {
    if (::chown(dir_.c_str(), as->uid, as->gid) != 0 || ::chown(pwfile.c_str(), as->uid, as->gid) != 0)
      return Status(StatusCode::kInternal, "cannot give " + dir_ + " to the postgres user");
  }

  auto initdb = Spawn({bindir + "/initdb", "-D", dir_ + "/data", "-U", kSuperuser,
                       "--pwfile=" + pwfile, "--auth-host=scram-sha-256", "--auth-local=trust",
                       "-E", "UTF8", "--locale=C", "--no-sync"},
                      dir_, dir_ + "/initdb.log", *as, /*die_with_parent=*/true);
  if (!initdb.ok()) return initdb.status();
  const auto done = WaitFor(*initdb, std::chrono::minutes(2));
  if (!done.has_value()) {
    ::kill(*initdb, SIGKILL);
    ::waitpid(*initdb, nullptr, 0);
    return Status(StatusCode::kDeadlineExceeded, "initdb took over 2 minutes");
  }
  if (!WIFEXITED(*done) || WEXITSTATUS(*done) != 0)
    return Status(StatusCode::kInternal, "initdb failed: " + LogTail());

  // A port may be taken between FreePort and the server's bind: then another is tried.
  for (int attempt = 0; attempt < 5; ++attempt) {
    port_ = FreePort();
    if (port_ == 0) return Status(StatusCode::kInternal, "no free TCP port on 127.0.0.1");
    const std::string log = dir_ + "/postgres.log";
    const std::string port = std::to_string(port_);
    // Durability is of no use to a test server: fsync and full-page writes off make it fast.
    auto server = Spawn({bindir + "/postgres", "-D", dir_ + "/data", "-p", port, "-k", dir_,
                         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c",
                         "synchronous_commit=off", "-c", "full_page_writes=off", "-c",
                         "max_connections=40", "-c", "shared_buffers=32MB"},
                        dir_, log, *as, /*die_with_parent=*/true);
    if (!server.ok()) return server.status();
    server_ = *server;
    const std::string ping = "host=127.0.0.1 port=" + port + " dbname=postgres user=" +
                             kSuperuser + " connect_timeout=5";
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    bool exited = false;
    while (!exited) {
      if (PQping(ping.c_str()) == PQPING_OK) break;
      if (WaitFor(server_, std::chrono::milliseconds(0)).has_value()) {
        exited = true;
        server_ = -1;
      } else if (std::chrono::steady_clock::now() >= deadline) {
        return Status(StatusCode::kDeadlineExceeded,
                      "the server did not accept connections within 60 s: " + LogTail());
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(30));
      }
    }
    if (exited) {
      if (ReadTail(log, 4000).find("in use") != std::string::npos) continue;
      return Status(StatusCode::kInternal, "the server exited: " + LogTail());
    }
    const std::string admin = "host=" + dir_ + " port=" + port + " dbname=postgres user=" +
                              kSuperuser;
    admin_ = PQconnectdb(admin.c_str());
    if (PQstatus(admin_) != CONNECTION_OK)
      return Status(StatusCode::kInternal,
                    "cannot connect to the server's socket: " + Trim(PQerrorMessage(admin_)));
    return Status::Ok();
  }
  return Status(StatusCode::kInternal, "every port tried was taken: " + LogTail());
}

void PostgresCluster::Stop() {
  if (admin_ != nullptr) {
    PQfinish(admin_);
    admin_ = nullptr;
  }
  if (server_ > 0) {
    // Fast shutdown; then immediate; then the end.
    for (int signal : {SIGINT, SIGQUIT, SIGKILL}) {
      ::kill(server_, signal);
      if (WaitFor(server_, std::chrono::seconds(signal == SIGINT ? 30 : 10)).has_value()) break;
    }
    server_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ec;
    fs::remove_all(dir_, ec);
    dir_.clear();
  }
}

std::string PostgresCluster::LogTail() const {
  return ReadTail(dir_ + "/initdb.log", 1500) + ReadTail(dir_ + "/postgres.log", 1500);
}

Result<std::string> PostgresCluster::CreateDatabase() {
  std::lock_guard<std::mutex> lock(mu_);
  const std::string name = "t_" + std::to_string(++next_db_);
  const std::string sql = "CREATE DATABASE " + name;
  PGresult* r = PQexec(admin_, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) return Status(StatusCode::kInternal, sql + ": " + Trim(PQerrorMessage(admin_)));
  return name;
}

Status PostgresCluster::DropDatabase(const std::string& name) {
  std::lock_guard<std::mutex> lock(mu_);
  // FORCE: a connection a failed test left open does not keep the database.
  const std::string sql = "DROP DATABASE IF EXISTS " + name + " WITH (FORCE)";
  PGresult* r = PQexec(admin_, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) return Status(StatusCode::kInternal, sql + ": " + Trim(PQerrorMessage(admin_)));
  return Status::Ok();
}

std::string PostgresCluster::Url(const std::string& db, const std::string& password) const {
  return std::string("postgresql://") + kSuperuser + ":" + PercentEncode(password) +
         "@127.0.0.1:" + std::to_string(port_) + "/" + db;
}

PGconn* PostgresCluster::Admin(const std::string& db) const {
  const std::string conninfo = "host=" + dir_ + " port=" + std::to_string(port_) + " dbname=" +
                               db + " user=" + kSuperuser;
  return PQconnectdb(conninfo.c_str());
}

}  // namespace store_test
}  // namespace crmbridge
