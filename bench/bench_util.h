// Small helpers shared by the benchmarks: CPU time and peak RSS from getrusage, a steady wall
// clock, the machine's description, flag parsing, a temporary directory and the checks that the
// measured work was done.
#pragma once

#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "src/engine/sync_engine.h"

namespace crmbridge::bench {

// CPU time (user + system, every thread of the process), wall time and peak RSS at one moment.
struct Sample {
  double user_s = 0, sys_s = 0, wall_s = 0;
  long max_rss_kb = 0;

  static Sample Now() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    Sample s;
    s.user_s = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
    s.sys_s = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
    s.max_rss_kb = ru.ru_maxrss;  // Linux: kilobytes, the process's peak so far
    return s;
  }
  double cpu_s() const { return user_s + sys_s; }
};

// Resident set size right now (kB), from /proc/self/statm.
inline long CurrentRssKb() {
  std::ifstream statm("/proc/self/statm");
  long pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// "2 x AMD EPYC" from nproc and /proc/cpuinfo.
inline std::string Machine() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line))
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  return std::to_string(std::thread::hardware_concurrency()) + " x " + model;
}

// The flags a benchmark takes, each declared with its default and one line of help. `--help`
// prints them; a flag the benchmark does not take, one without its value, or a number that does
// not parse stops it before it measures anything (a typo must not measure the defaults instead).
// Flags are --name=value or --name value.
//
//   Flags flags(argc, argv, "What it measures, in a line.");
//   const int64_t n = flags.Int("records", 100000, "records to generate");
//   if (const int rc = flags.Done(); rc >= 0) return rc;
class Flags {
 public:
  Flags(int argc, char** argv, std::string about)
      : argc_(argc), argv_(argv), about_(std::move(about)) {}

  // `metavar` names the value in the usage line: "URL", "real|skip".
  std::string Text(const std::string& name, const std::string& fallback, const std::string& help,
                   const std::string& metavar = "TEXT") {
    Declare(name, metavar, fallback, help);
    const std::optional<std::string> v = Value(name);
    return v ? *v : fallback;
  }
  long long Int(const std::string& name, long long fallback, const std::string& help) {
    Declare(name, "N", std::to_string(fallback), help);
    const std::optional<std::string> v = Value(name);
    if (!v) return fallback;
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno == ERANGE)
      Problem("--" + name + " takes a whole number, not '" + *v + "'");
    return n;
  }
  bool Bool(const std::string& name, const std::string& help) {
    Declare(name, "", "", help);
    for (int i = 1; i < argc_; ++i)
      if ("--" + name == argv_[i]) return true;
    return false;
  }

  // After the last flag is declared: -1 to go on; 0 after printing --help; 2 after naming what
  // is wrong on stderr.
  int Done() {
    for (int i = 1; i < argc_; ++i) {
      const std::string arg = argv_[i];
      if (arg == "--help" || arg == "-h") {
        std::printf("usage: %s\n\n%s\n\n", Usage().c_str(), about_.c_str());
        for (const Declared& d : declared_) {
          const std::string flag = "--" + d.name + (d.kind.empty() ? "" : " " + d.kind);
          std::printf("  %-24s %s%s\n", flag.c_str(), d.help.c_str(),
                      d.fallback.empty() ? "" : (" (default " + d.fallback + ")").c_str());
        }
        return 0;
      }
      const std::string name = arg.rfind("--", 0) == 0 ? arg.substr(2, arg.find('=') - 2) : "";
      const Declared* d = Find(name);
      if (d == nullptr) {
        Problem("unknown argument '" + arg + "'");
        if (!name.empty() && arg.find('=') == std::string::npos && i + 1 < argc_ &&
            std::strncmp(argv_[i + 1], "--", 2) != 0)
          ++i;  // the unknown flag's value, not an argument of its own
      } else if (!d->kind.empty() && arg.find('=') == std::string::npos) {
        if (i + 1 >= argc_) Problem("--" + name + " needs a value");
        ++i;  // its value
      }
    }
    if (problems_.empty()) return -1;
    for (const std::string& p : problems_) std::fprintf(stderr, "%s\n", p.c_str());
    std::fprintf(stderr, "usage: %s (--help lists the flags)\n", Usage().c_str());
    return 2;
  }

 private:
  struct Declared {
    std::string name, kind, fallback, help;
  };
  // The program's name and every flag declared, each with the name of its value.
  std::string Usage() const {
    std::string program = argc_ > 0 ? argv_[0] : "bench";
    program = program.substr(program.find_last_of('/') + 1);
    for (const Declared& d : declared_)
      program += " [--" + d.name + (d.kind.empty() ? "" : " " + d.kind) + "]";
    return program;
  }
  void Declare(const std::string& name, const std::string& kind, const std::string& fallback,
               const std::string& help) {
    if (Find(name) == nullptr) declared_.push_back({name, kind, fallback, help});
  }
  const Declared* Find(const std::string& name) const {
    for (const Declared& d : declared_)
      if (d.name == name) return &d;
    return nullptr;
  }
  std::optional<std::string> Value(const std::string& name) const {
    const std::string eq = "--" + name + "=", bare = "--" + name;
    for (int i = 1; i < argc_; ++i) {
      if (std::strncmp(argv_[i], eq.c_str(), eq.size()) == 0) return std::string(argv_[i] + eq.size());
      if (bare == argv_[i] && i + 1 < argc_) return std::string(argv_[i + 1]);
    }
    return std::nullopt;
  }
  void Problem(std::string p) {
    if (std::find(problems_.begin(), problems_.end(), p) == problems_.end())
      problems_.push_back(std::move(p));
  }

  int argc_;
  char** argv_;
  std::string about_;
  std::vector<Declared> declared_;
  std::vector<std::string> problems_;
};

inline std::string CommandLine(int argc, char** argv) {
  std::string s;
  for (int i = 0; i < argc; ++i) s += (i ? " " : "") + std::string(argv[i]);
  return s;
}

// A fresh directory under $TMPDIR (or /tmp), removed by the destructor unless kept.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    const char* tmp = getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    path_ = mkdtemp(tmpl.data()) ? tmpl : "";
  }
  ~TempDir() {
    if (!keep && !path_.empty()) std::system(("rm -rf '" + path_ + "'").c_str());
  }
  const std::string& path() const { return path_; }
  bool keep = false;

 private:
  std::string path_;
};

// Size of a file in bytes, 0 if absent.
inline long long FileSize(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  return f ? static_cast<long long>(f.tellg()) : 0;
}

// A run's counts for one system and entity; zeros when it has none.
inline EntityCounts CountsOf(const RunSummary& s, const std::string& system,
                             const std::string& entity) {
  const auto sys = s.counts.find(system);
  if (sys == s.counts.end()) return {};
  const auto e = sys->second.find(entity);
  return e == sys->second.end() ? EntityCounts{} : e->second;
}

// Figures mean nothing if the run did not do the work they measure (every record written, none
// dead-lettered, nothing written by an idle run): each benchmark checks that, prints every
// failure, and exits 1 through ExitCode(). Nothing here looks at time.
class Checks {
 public:
  __attribute__((format(printf, 3, 4))) void Expect(bool ok, const char* what, ...) {
    ++count_;
    if (ok) return;
    ++failed_;
    // On stdout with the figures it contradicts.
    std::va_list args;
    va_start(args, what);
    std::printf("check failed: ");
    std::vprintf(what, args);
    std::printf("\n");
    va_end(args);
  }
  int ExitCode() const {
    if (failed_ == 0) {
      std::printf("checks: %d passed\n", count_);
      return 0;
    }
    std::printf("checks: %d of %d FAILED\n", failed_, count_);
    return 1;
  }

 private:
  int count_ = 0, failed_ = 0;
};

}  // namespace crmbridge::bench
