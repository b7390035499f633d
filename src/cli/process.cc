#include "src/cli/process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <fstream>
#include <sstream>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "src/core/ids.h"
#include "src/core/logging.h"
#include "src/core/stop.h"

namespace crmbridge::cli {

std::atomic<bool> g_stop{false};

namespace {
extern "C" void OnStopSignal(int) {
  g_stop.store(true);
  RequestStop();  // and waits for a rate budget or a retry end now
}
}  // namespace

void InstallStopHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
}

void SetUpLogging(const GlobalOptions& global) {
  InitLogging(global.log_format == "json" ? LogFormat::kJson : LogFormat::kText,
              spdlog::level::from_str(global.log_level));
}

namespace {

std::string HostName() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return host;
}

// This kernel's boot (the first 8 digits of its boot id) and this process's pid namespace (its
// inode): "" where /proc does not tell.
std::string MachineToken() {
  std::ifstream boot("/proc/sys/kernel/random/boot_id");
  std::string boot_id;
  std::getline(boot, boot_id);
  struct stat ns;
  if (boot_id.size() < 8 || ::stat("/proc/self/ns/pid", &ns) != 0) return "";
  return boot_id.substr(0, 8) + "-" + std::to_string(static_cast<unsigned long long>(ns.st_ino));
}

}  // namespace

std::string Holder() {
  return fmt::format("{}:{}:{}:{}", HostName(), getpid(), NewUuid().substr(0, 8), MachineToken());
}

bool HolderHasEnded(const std::string& holder) {
  std::vector<std::string> parts;  // host, pid, random, machine
  std::istringstream in(holder);
  for (std::string part; std::getline(in, part, ':');) parts.push_back(part);
  if (parts.size() != 4 || parts[0] != HostName() || parts[3].empty() ||
      parts[3] != MachineToken())
    return false;
  pid_t pid = 0;
  const std::string& text = parts[1];
  const auto parsed = std::from_chars(text.data(), text.data() + text.size(), pid);
  if (parsed.ec != std::errc() || parsed.ptr != text.data() + text.size() || pid <= 1 ||
      pid == getpid())
    return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace crmbridge::cli
