#include "src/cli/process.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <fstream>
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
  std::vector<std::string> parts;
  size_t at = 0;
  while (true) {
    const size_t colon = holder.find(':', at);
    parts.push_back(holder.substr(at, colon == std::string::npos ? colon : colon - at));
    if (colon == std::string::npos) break;
    at = colon + 1;
  }
  if (parts.size() != 4 || parts[0] != HostName() || parts[3].empty() ||
      parts[3] != MachineToken())
    return false;
  const std::string& pid_text = parts[1];
  if (pid_text.empty() || pid_text.size() > 9 ||
      pid_text.find_first_not_of("0123456789") != std::string::npos)
    return false;
  const pid_t pid = static_cast<pid_t>(std::stol(pid_text));
  if (pid <= 1 || pid == getpid()) return false;
  return ::kill(pid, 0) != 0 && errno == ESRCH;
}

}  // namespace crmbridge::cli
