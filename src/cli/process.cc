#include "src/cli/process.h"

#include <unistd.h>

#include <csignal>

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

std::string Holder() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return fmt::format("{}:{}:{}", host, getpid(), NewUuid().substr(0, 8));
}

}  // namespace crmbridge::cli
