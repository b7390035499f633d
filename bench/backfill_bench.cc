// End to end under the vendors' rate limits: `crmbridge backfill` of N HubSpot onboarding tickets
// into Dynamics 365 (onboarding preset), the in-process mocks enforcing HubSpot's 100 requests per
// rolling 10 s and 5 searches per second and Dataverse's 6000 requests per 300 s, and crmbridge
// configured with the same budgets.
//
//   crmbridge_bench_backfill [--records N] [--clock real|skip] [--sync] [--search-per-ms 1000]
//                            [--margin-ms M] [--no-overlap]
//
// --clock real (default) runs in real time. --clock skip runs the mocks and crmbridge on one
// shared clock that is real time plus every wait crmbridge sleeps: work takes its real time, waits
// for rate-limit tokens or Retry-After take none but are added to the clock both sides read. The
// elapsed time it reports is what the run takes in real time, as long as nothing overlaps a wait
// (in a HubSpot -> Dynamics 365 backfill only the reader waits; concurrent waits would be counted
// twice, which understates throughput).
//
// The transport stack is bootstrap.cc's BuildSystemTransport (cpprest, redacting log, rate
// limiter, retries) with a probe between the log and the limiter that counts every attempt's
// status, so 429s hidden by the retries are seen.
//
// --search-per-ms sets the window of crmbridge's search budget (5 per this many ms; the mock keeps
// 5 per 1000 ms). --margin-ms sets TokenBucket's margin on every budget (default: the shipped
// TokenBucket::DefaultMargin, 2% of the window; 0 returns tokens exactly one window later), to
// measure what the margin buys. --no-overlap makes every write wait for the last read
// (RunOptions::flush_while_reading off), as crmbridge did before writes overlapped the reads.
// Exits 1 when the run did not do the work it times: a record not written to Dynamics 365, a dead
// letter (ctest runs it with --records 200, label bench).
//
// Bound: the tightest budget for this flow is HubSpot search, 5 per second of at most 200 results
// (refs/hubspot §4), i.e. 1000 records/s over every entity the preset reads from HubSpot (N
// companies, their contacts, N tickets, N notes: each is read by search); Dynamics 365 takes 1000
// upserts per $batch and 6000 $batch per 300 s (20,000 records/s), HubSpot's 10-second budget
// carries the setup calls and the association reads (one batch read per page and reference).
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "connectors/registry.h"
#include "mocks/dynamics365/dynamics365_mock.h"
#include "mocks/hubspot/hubspot_mock.h"
#include "src/core/cpprest_transport.h"
#include "src/core/logging.h"
#include "src/core/rate_limiter.h"
#include "src/core/retrying_transport.h"
#include "src/engine/bootstrap.h"

namespace crmbridge::bench {
namespace {

using nlohmann::json;

// Real time plus every wait requested through SleepFor, which returns at once.
class SkipWaitClock : public Clock {
 public:
  TimePoint Now() override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now()) +
           Duration(offset_ms_.load());
  }
  void SleepFor(Duration d) override {
    if (d.count() > 0) offset_ms_ += d.count();
  }
  int64_t skipped_ms() const { return offset_ms_.load(); }

 private:
  std::atomic<int64_t> offset_ms_{0};
};

// Counts every attempt that reaches the network, by budget, and keeps the times of 429s.
struct Attempt {
  std::string budget;  // "hubspot", "hubspot search", "dynamics365"
  int64_t at_ms;       // when the answer came
  int status;
  int64_t latency_ms;  // from leaving the limiter to the answer
};
class Probe {
 public:
  void Record(Attempt a) {
    std::lock_guard<std::mutex> lock(mu_);
    attempts_.push_back(std::move(a));
  }
  std::vector<Attempt> attempts() {
    std::lock_guard<std::mutex> lock(mu_);
    return attempts_;
  }

 private:
  std::mutex mu_;
  std::vector<Attempt> attempts_;
};
class ProbeTransport : public TransportWrapper {
 public:
  ProbeTransport(std::unique_ptr<Transport> target, std::string system, Probe* probe, Clock* clock)
      : TransportWrapper(std::move(target)), system_(std::move(system)), probe_(probe), clock_(clock) {}
  Result<Response> Send(const Request& request) override {
    const auto sent = std::chrono::steady_clock::now();
    auto r = TransportWrapper::Send(request);
    const int64_t latency = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - sent).count();
    const bool search = request.url.find("/search") != std::string::npos;
    probe_->Record({system_ + (search ? " search" : ""), clock_->NowMillis(), r.ok() ? r->status : 0,
                    latency});
    return r;
  }

 private:
  std::string system_;
  Probe* probe_;
  Clock* clock_;
};

// bootstrap.cc's BuildSystemTransport, with the probe below the limiter.
// `margin_ms` < 0: the bucket's default margin.
std::shared_ptr<Transport> ProbedTransport(const SystemConfig& system, Clock* clock, Probe* probe,
                                           int64_t margin_ms) {
  std::unique_ptr<Transport> t = NewCpprestTransport(CpprestOptions{});
  t = std::make_unique<RedactingLogTransport>(std::move(t), clock);
  t = std::make_unique<ProbeTransport>(std::move(t), system.name, probe, clock);
  std::vector<RateLimitedTransport::Route> routes;
  auto bucket = [clock, margin_ms](const RateLimitConfig& l) -> std::shared_ptr<TokenBucket> {
    if (l.requests <= 0) return nullptr;
    const Clock::Duration margin =
        margin_ms < 0 ? TokenBucket::DefaultMargin(l.per) : Clock::Duration(margin_ms);
    return std::make_shared<TokenBucket>(l.requests, l.per, clock, margin);
  };
  if (auto search = bucket(system.search_rate_limit))
    routes.push_back(RateLimitedTransport::PathContains("/search", search));
  t = std::make_unique<RateLimitedTransport>(std::move(t), bucket(system.rate_limit),
                                             std::move(routes), clock);
  RetryPolicy policy;
  policy.max_attempts = system.max_attempts;
  policy.classify = HttpClassifierOfKind(system.kind);
  t = std::make_unique<RetryingTransport>(std::move(t), policy, clock);
  return std::shared_ptr<Transport>(std::move(t));
}

int Main(int argc, char** argv) {
  Flags flags(argc, argv,
              "A HubSpot -> Dynamics 365 backfill with the mocks enforcing the vendors' rate\n"
              "limits and crmbridge configured with the same budgets.");
  const int64_t n = flags.Int("records", 100000, "HubSpot onboarding tickets to backfill");
  const std::string clock_kind = flags.Text(
      "clock", "real", "real, or skip: waits for the limits take no real time but count",
      "real|skip");
  const bool sync = flags.Bool("sync", "run `crmbridge sync` instead of a backfill of HubSpot");
  const int64_t search_per_ms =
      flags.Int("search-per-ms", 1000, "crmbridge's search budget: 5 per this many ms");
  const int64_t margin_ms =
      flags.Int("margin-ms", -1, "every budget's margin in ms (-1: the shipped default)");
  const bool no_overlap =
      flags.Bool("no-overlap", "flush after the last read instead of while reading");
  if (const int rc = flags.Done(); rc >= 0) return rc;
  if (clock_kind != "real" && clock_kind != "skip") {
    std::fprintf(stderr, "--clock is real or skip, not '%s'\n", clock_kind.c_str());
    return 2;
  }
  SkipWaitClock skip;
  Clock* clock = clock_kind == "skip" ? static_cast<Clock*>(&skip) : Clock::Real();
  std::printf("crmbridge backfill benchmark (HubSpot -> Dynamics 365, mocks enforcing the limits)\n");
  std::printf("  reproduce: %s\n", CommandLine(argc, argv).c_str());
  std::printf("  machine:   %s\n", Machine().c_str());
  std::printf("  records:   %" PRId64 " onboarding tickets; clock: %s; %s; crmbridge's search"
              " budget 5 per %" PRId64 " ms, tokens back %" PRId64 " ms after that\n", n,
              clock_kind == "skip" ? "real time + skipped waits" : "real time",
              sync ? "crmbridge sync" : "crmbridge backfill --system hubspot", search_per_ms,
              margin_ms < 0
                  ? static_cast<int64_t>(
                        TokenBucket::DefaultMargin(std::chrono::milliseconds(search_per_ms)).count())
                  : margin_ms);

  mocks::HubSpotMock::Options hs;
  hs.tokens = {"pat-bench"};
  hs.enforce_limits = true;  // 100 per rolling 10 s, 5 searches per second
  hs.clock = clock;
  mocks::HubSpotMock hubspot(hs);
  mocks::Dynamics365Mock::Options d;
  d.client_id = "bench-client";
  d.client_secret = "bench-secret";
  d.service_protection = true;  // 6000 per 300 s, 52 concurrent
  d.clock = clock;
  mocks::Dynamics365Mock dynamics(d);
  Sample seed_a = Sample::Now();
  hubspot.Seed(7, static_cast<int>(n));
  Sample seed_b = Sample::Now();
  std::printf("  seeded HubSpot in %.1f s\n", seed_b.wall_s - seed_a.wall_s);
  if (!hubspot.Start().ok() || !dynamics.Start().ok()) return 1;

  TempDir dir("crmbridge-bench-backfill");
  AppConfig config;
  config.path = dir.path() + "/crmbridge.yaml";
  config.state_path = dir.path() + "/state.db";
  config.mapping_paths = {std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml"};
  SystemConfig h;
  h.name = h.kind = "hubspot";
  h.base_url = hubspot.base_url();
  h.auth = {{"token", "pat-bench"}};
  h.rate_limit = {100, std::chrono::milliseconds(10000)};
  h.search_rate_limit = {5, std::chrono::milliseconds(search_per_ms)};
  SystemConfig m;
  m.name = m.kind = "dynamics365";
  m.base_url = dynamics.base_url();
  m.auth = {{"token_url", dynamics.token_url()}, {"client_id", "bench-client"},
            {"client_secret", "bench-secret"}};
  m.rate_limit = {6000, std::chrono::milliseconds(300000)};
  config.systems = {{"hubspot", h}, {"dynamics365", m}};
  auto plan = LoadPlanFor(config);
  if (!plan.ok()) {
    std::fprintf(stderr, "%s\n", plan.status().ToString().c_str());
    return 1;
  }
  auto store = OpenSqliteStore(config.state_path);
  if (!store.ok()) return 1;

  Probe probe;
  std::map<std::string, std::unique_ptr<Connector>> connectors;
  for (const auto& [name, system] : config.systems) {
    auto c = NewConnector(system, ProbedTransport(system, clock, &probe, margin_ms), clock);
    if (!c.ok()) {
      std::fprintf(stderr, "%s\n", c.status().ToString().c_str());
      return 1;
    }
    connectors.emplace(name, std::move(*c));
  }
  auto engine =
      std::make_unique<SyncEngine>(&config, *plan, store->get(), std::move(connectors), clock);
  RunOptions opt;
  opt.holder = "bench";
  opt.flush_while_reading = !no_overlap;
  if (!sync) {
    opt.mode = "backfill";
    opt.backfill_system = "hubspot";
  }
  const int64_t start_ms = clock->NowMillis();
  int64_t next_report = n / 10;
  opt.progress = [&](int64_t read, int64_t) {
    if (read < next_report) return;
    next_report += n / 10;
    const double s = (clock->NowMillis() - start_ms) / 1000.0;
    std::printf("    read %7" PRId64 " at %6.1f s (%.0f records/s)\n", read, s, read / s);
    std::fflush(stdout);
  };
  const Sample a = Sample::Now();
  auto summary = engine->RunOnce(opt);
  const Sample b = Sample::Now();
  const int64_t end_ms = clock->NowMillis();
  if (!summary.ok()) {
    std::fprintf(stderr, "%s\n", summary.status().ToString().c_str());
    return 1;
  }
  const EntityCounts& in = summary->counts["hubspot"]["onboarding"];
  const EntityCounts& out = summary->counts["dynamics365"]["onboarding"];
  // Every entity read from HubSpot draws on the search budget, so throughput counts them all.
  int64_t read_total = 0, created_total = 0;
  std::string per_entity;
  for (const auto& [entity, counts] : summary->counts["hubspot"]) {
    read_total += counts.read;
    per_entity += (per_entity.empty() ? "" : ", ") + entity + " " + std::to_string(counts.read);
  }
  for (const auto& [entity, counts] : summary->counts["dynamics365"]) created_total += counts.created;
  const double elapsed = (end_ms - start_ms) / 1000.0;

  // Attempts and 429s per budget; a 429 is "extra" when another 429 of the same budget came less
  // than one window before it (the client should have paused for the whole window after the first).
  struct Budget {
    int64_t window_ms;
    int64_t calls = 0, throttled = 0, extra = 0, last_429 = -1;
    int64_t first_ms = -1, last_ms = -1, latency_ms = 0;
  };
  std::map<std::string, Budget> budgets = {{"hubspot", {10000}},
                                           {"hubspot search", {1000}},
                                           {"dynamics365", {300000}}};
  int64_t read_end_ms = start_ms;
  for (const Attempt& at : probe.attempts()) {
    Budget& bu = budgets[at.budget];
    ++bu.calls;
    bu.latency_ms += at.latency_ms;
    if (bu.first_ms < 0) bu.first_ms = at.at_ms;
    bu.last_ms = at.at_ms;
    if (at.budget == "hubspot search") read_end_ms = std::max(read_end_ms, at.at_ms);
    if (at.status != 429) continue;
    ++bu.throttled;
    if (bu.last_429 >= 0 && at.at_ms - bu.last_429 < bu.window_ms) ++bu.extra;
    bu.last_429 = at.at_ms;
  }
  const double read_s = (read_end_ms - start_ms) / 1000.0;
  const double bound = 5.0 * 200.0;  // records/s: 5 searches per second, 200 results each
  const double achieved = read_total / elapsed;
  std::printf("\n  read %" PRId64 " tickets, created %" PRId64 " opportunities (updated %" PRId64
              ", dead-lettered %" PRId64 ", unreachable %zu)\n",
              in.read, out.created, out.updated, out.dead_lettered, summary->unreachable.size());
  std::printf("  read %" PRId64 " HubSpot records in all (%s); created %" PRId64
              " Dynamics 365 records in all\n",
              read_total, per_entity.c_str(), created_total);
  std::printf("  elapsed %.1f s (%s); reading ended at %.1f s, writing took the rest; writes %s\n",
              elapsed, clock_kind == "skip" ? "work in real time + waits skipped" : "real time",
              read_s, no_overlap ? "after the reads (--no-overlap)" : "overlapping the reads");
  if (clock_kind == "skip")
    std::printf("  of which waits skipped: %.1f s; real wall %.1f s\n", skip.skipped_ms() / 1000.0,
                b.wall_s - a.wall_s);
  std::printf("  CPU of the whole process (crmbridge and both mocks): %.1f s\n", b.cpu_s() - a.cpu_s());
  for (const auto& [name, bu] : budgets)
    std::printf("  %-15s %6" PRId64 " calls, %" PRId64 " answered 429 (%" PRId64
                " within one window of another 429), mean latency %.0f ms\n",
                name.c_str(), bu.calls, bu.throttled, bu.extra,
                bu.calls ? static_cast<double>(bu.latency_ms) / bu.calls : 0.0);
  std::printf("  throughput %.0f records/s; bound %.0f records/s (5 searches/s x 200) -> %.1f%% of the"
              " bound (target >= 95%%)\n",
              achieved, bound, 100.0 * achieved / bound);
  std::printf("  read phase alone: %.0f records/s -> %.1f%% of the bound\n", read_total / read_s,
              100.0 * read_total / read_s / bound);
  std::printf("JSON {\"records\":%" PRId64 ",\"read_total\":%" PRId64 ",\"clock\":\"%s\",\"elapsed_s\":%.1f,\"read_s\":%.1f,"
              "\"records_per_s\":%.0f,\"bound\":%.0f,\"of_bound\":%.3f,\"hubspot_search_calls\":%" PRId64
              ",\"hubspot_calls\":%" PRId64 ",\"dynamics365_calls\":%" PRId64 ",\"429\":%" PRId64
              ",\"extra_429\":%" PRId64 "}\n",
              in.read, read_total, clock_kind.c_str(), elapsed, read_s, achieved, bound, achieved / bound,
              budgets["hubspot search"].calls, budgets["hubspot"].calls, budgets["dynamics365"].calls,
              budgets["hubspot"].throttled + budgets["hubspot search"].throttled +
                  budgets["dynamics365"].throttled,
              budgets["hubspot"].extra + budgets["hubspot search"].extra + budgets["dynamics365"].extra);

  // The throughput is of this work: every ticket read became an opportunity that Dynamics 365
  // holds, and every entity read from HubSpot was written there.
  Checks checks;
  checks.Expect(summary->unreachable.empty(), "a system was unreachable");
  checks.Expect(in.read == n, "read %" PRId64 " tickets, not %" PRId64, in.read, n);
  const int64_t held = static_cast<int64_t>(dynamics.Dump()["opportunities"].size());
  checks.Expect(out.created == n && held == n,
                "created %" PRId64 " opportunities, Dynamics 365 holds %" PRId64 ", not %" PRId64,
                out.created, held, n);
  checks.Expect(summary->TotalDeadLettered() == 0, "%" PRId64 " writes dead-lettered",
                summary->TotalDeadLettered());
  for (const auto& [entity, counts] : summary->counts["hubspot"]) {
    const EntityCounts written = CountsOf(*summary, "dynamics365", entity);
    checks.Expect(counts.rejected == 0 && written.created == counts.read - counts.duplicates,
                  "%s: read %" PRId64 " (rejected %" PRId64 ", duplicates %" PRId64
                  ") in HubSpot, created %" PRId64 " in Dynamics 365",
                  entity.c_str(), counts.read, counts.rejected, counts.duplicates, written.created);
  }
  // The connectors' keep-alive connections close with the engine; a mock's Stop() would wait for
  // them to time out.
  engine.reset();
  hubspot.Stop();
  dynamics.Stop();
  return checks.ExitCode();
}

}  // namespace
}  // namespace crmbridge::bench

int main(int argc, char** argv) {
  // Line by line, so that piped figures and the log lines on stderr come out in order.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return crmbridge::bench::Main(argc, argv);
}
