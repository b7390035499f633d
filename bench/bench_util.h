// Small helpers shared by the benchmarks: CPU time and peak RSS from getrusage, a steady wall
// clock, the machine's description, flag parsing, a temporary directory and the checks that the
// measured work was done.
#pragma once

#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

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

// --name=value or --name value; `fallback` when absent.
inline std::string Flag(int argc, char** argv, const std::string& name, const std::string& fallback) {
  const std::string eq = "--" + name + "=", bare = "--" + name;
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], eq.c_str(), eq.size()) == 0) return argv[i] + eq.size();
    if (bare == argv[i] && i + 1 < argc) return argv[i + 1];
  }
  return fallback;
}
inline long long IntFlag(int argc, char** argv, const std::string& name, long long fallback) {
  return std::stoll(Flag(argc, argv, name, std::to_string(fallback)));
}
inline bool BoolFlag(int argc, char** argv, const std::string& name) {
  for (int i = 1; i < argc; ++i)
    if ("--" + name == argv[i]) return true;
  return false;
}

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
