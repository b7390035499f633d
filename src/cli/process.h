// What every long-running or run-making command shares: the stop flag its signal handlers set,
// its logging set-up, and the name it holds leases and claims under.
#pragma once

#include <atomic>
#include <string>

#include "src/cli/commands.h"

namespace crmbridge::cli {

// Set by SIGTERM or SIGINT once InstallStopHandlers ran: runs stop after their batch in flight.
extern std::atomic<bool> g_stop;
void InstallStopHandlers();
void SetUpLogging(const GlobalOptions& global);
// This process as a lease holder: "host:pid:8 hex digits".
std::string Holder();

}  // namespace crmbridge::cli
