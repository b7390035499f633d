// Small helpers shared by the benchmarks: CPU time and peak RSS from getrusage, a steady wall
// clock, the machine's description, flag parsing and a temporary directory.
#pragma once

#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

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

}  // namespace crmbridge::bench
