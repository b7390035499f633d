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
// This process as a lease holder: "host:pid:8 hex digits:machine", where machine tells this
// kernel's boot and process-id namespace apart from another's (two containers may share a host
// name, and a pid means nothing across namespaces).
std::string Holder();
// Whether `holder`, as Holder() wrote it in some process, is a process of this machine (the same
// host name, boot and pid namespace) that has ended: killed or crashed, its lease left behind. A
// holder of another machine, of another form, or whose pid is running (perhaps reused) has not.
bool HolderHasEnded(const std::string& holder);

}  // namespace crmbridge::cli
