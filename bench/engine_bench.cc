// Engine overhead without network: the real SyncEngine, the onboarding preset mapping and the
// SQLite store in a temporary directory, between two in-memory connectors built for speed.
//
//   crmbridge_bench_engine [--records N] [--page 200] [--batch 1000] [--idle-runs 1] [--keep]
//                          [--no-overlap] [--state PATH_OR_URL [--state-made]]
//
// "hubspot" generates N onboarding tickets on the fly (nothing is held in memory, so the peak RSS
// is the engine's and the store's, not the fake data's); "dynamics365" accepts every write and
// keeps nothing. Run 1 creates every record in the target (read, map, identity, diff, outbox,
// commit, flush in batches of 1000, outcome commit); run 2 reads the same N records again and must
// find every one unchanged (no write). Reported per run: CPU time (getrusage, user + system, all
// threads), wall time, records per CPU second, and the process's peak RSS. Writes overlap the
// reads as in a real run (RunOptions::flush_while_reading); --no-overlap makes them wait for the
// last read, which also splits the CPU cleanly into reading and flushing. --idle-runs K repeats the
// idle run K times (each reported and checked; the summary gives their mean), so that a profiler
// sees mostly the idle path; with 0 there is none, and a profiler sees the initial sync alone.
// --state runs on that store instead of a new SQLite file; with --state-made it already holds the
// N records (a run before made it), so every run is idle. Exits 1 when a run did not do that work
// (ctest runs it with --records 200, label bench).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "src/cli/allocator.h"
#include "src/core/ids.h"
#include "src/core/logging.h"
#include "src/engine/bootstrap.h"
#include "src/engine/sync_engine.h"
#include "state/store.h"

namespace crmbridge::bench {
namespace {

using nlohmann::json;

constexpr const char* kStages[] = {"Ny",          "Onboarding – Pågår", "Må följas upp",
                                   "Manuell uppföljning", "Inaktiva kunder",   "Avslutad"};
constexpr const char* kPriorities[] = {"LOW", "MEDIUM", "HIGH"};
constexpr const char* kTrades[] = {"Bygg", "Fastighet", "Transport", "Vård",
                                   "Konsult", "Handel", "Logistik", "Media"};

// Ticket i as the HubSpot connector hands it over (stage ids already translated to labels).
NativeRecord Ticket(int64_t i, int64_t modified_ms) {
  NativeRecord r;
  r.id = std::to_string(1000 + i);
  r.modified_ms = modified_ms;
  r.fields = json::object();
  r.fields["subject"] = std::string("SE ") + kTrades[i % 8] + " Stockholm " + std::to_string(i + 1) +
                        " AB – onboarding";
  r.fields["content"] =
      "Signed contract received from Dealbuilder; " + std::to_string(5 + i % 200) + " licences.";
  r.fields["hs_pipeline"] = "7340123";
  r.fields["hs_pipeline_stage"] = kStages[(i * 7) % 6];
  r.fields["hs_ticket_priority"] = kPriorities[i % 3];
  r.fields["hs_lastmodifieddate"] = std::to_string(modified_ms);
  return r;
}

// Source: N tickets, paged by offset (every other object is empty); the last page's cursor is "" so every run reads all N again
// (the idle run is the worst case: every record is read, mapped and found unchanged).
class GeneratedSource : public Connector {
 public:
  GeneratedSource(int64_t n, int page) : n_(n) {
    caps_.max_batch = 100;
    caps_.max_page = page;
  }
  std::string_view Name() const override { return "hubspot"; }
  const Capabilities& capabilities() const override { return caps_; }
  Result<Page> ReadChanges(const ObjectRef& ref, const Cursor& cursor, const ReadContext& ctx) override {
    // Only tickets: the preset's other HubSpot objects (companies, contacts, notes) are empty, so
    // N is the number of records the engine processes.
    if (ref.object != "tickets") return Page{};
    const int64_t from = cursor.empty() ? 0 : std::stoll(cursor);
    const int64_t to = std::min<int64_t>(n_, from + caps_.max_page);
    Page page;
    page.records.reserve(static_cast<size_t>(to - from));
    for (int64_t i = from; i < to; ++i) page.records.push_back(Ticket(i, ctx.run_start_ms - 60000));
    page.has_more = to < n_;
    page.next = page.has_more ? std::to_string(to) : "";
    page.total = n_;
    return page;
  }
  Result<std::vector<WriteOutcome>> Write(const ObjectRef&, const std::vector<WriteOp>& ops) override {
    write_calls += 1;
    return std::vector<WriteOutcome>(ops.size());
  }
  int64_t write_calls = 0;

 private:
  int64_t n_;
  Capabilities caps_;
};

// Target: accepts every write, keeps nothing; a create's id is derived from its key.
class NullTarget : public Connector {
 public:
  explicit NullTarget(int batch) { caps_.max_batch = batch; caps_.max_page = 5000; }
  std::string_view Name() const override { return "dynamics365"; }
  const Capabilities& capabilities() const override { return caps_; }
  Result<Page> ReadChanges(const ObjectRef&, const Cursor&, const ReadContext&) override {
    return Page{};
  }
  Result<std::vector<WriteOutcome>> Write(const ObjectRef&, const std::vector<WriteOp>& ops) override {
    if (write_calls++ == 0) first_write = Sample::Now();
    write_ops += static_cast<int64_t>(ops.size());
    std::vector<WriteOutcome> out(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      out[i].created = ops[i].kind == WriteOp::Kind::kUpsert;
      out[i].native_id = ops[i].native_id.empty() ? NextGuid() : ops[i].native_id;
    }
    return out;
  }
  int64_t write_calls = 0, write_ops = 0;
  Sample first_write;

 private:
  // A new record's id as Dynamics 365 assigns one: a GUID, in no order a key could predict
  // (splitmix64 of a counter, so runs repeat).
  std::string NextGuid() {
    auto mix = [](uint64_t z) {
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return z ^ (z >> 31);
    };
    const uint64_t n = ++guids_ * 0x9e3779b97f4a7c15ULL;
    const uint64_t halves[2] = {mix(n), mix(n + 1)};
    unsigned char b[16];
    for (int k = 0; k < 16; ++k) b[k] = static_cast<unsigned char>(halves[k / 8] >> (8 * (k % 8)));
    b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
    return FormatUuid(b);
  }
  Capabilities caps_;
  uint64_t guids_ = 0;
};

struct RunResult {
  Sample before, after, flush_start;
  int64_t write_calls = 0, write_ops = 0, source_writes = 0;
  RunSummary summary;
};

int Main(int argc, char** argv) {
  Flags flags(argc, argv,
              "Engine overhead without network: an initial sync of N generated tickets, then idle\n"
              "runs over the same N, with CPU time, records per CPU second and peak RSS per run.");
  const int64_t n = flags.Int("records", 100000, "onboarding tickets the source generates");
  const int page = static_cast<int>(flags.Int("page", 200, "records per source page"));
  const int batch = static_cast<int>(flags.Int("batch", 1000, "writes per target call"));
  const int idle_runs = std::max(
      0, static_cast<int>(flags.Int("idle-runs", 1, "idle runs after the first, each measured")));
  const bool keep = flags.Bool("keep", "keep the temporary directory and its state file when done");
  const bool no_overlap =
      flags.Bool("no-overlap", "flush after the last read instead of while reading");
  const std::string state = flags.Text(
      "state", "", "run on this store (a SQLite path or postgresql:// URL), not a new file",
      "PATH_OR_URL");
  const bool state_made_flag =
      flags.Bool("state-made", "the --state store already holds the N records: every run is idle");
  if (const int rc = flags.Done(); rc >= 0) return rc;
  TempDir dir("crmbridge-bench-engine");
  dir.keep = keep;
  std::printf("crmbridge engine benchmark (no network)\n");
  std::printf("  reproduce: %s\n", CommandLine(argc, argv).c_str());
  std::printf("  machine:   %s\n", Machine().c_str());
  std::printf("  records:   %" PRId64 ", source page %d, target batch %d, store %s\n", n, page,
              batch,
              state.empty() ? (dir.path() + "/state.db").c_str()
                            : RedactUrlForLog(state).c_str());

  // Generating the fake tickets costs CPU the engine is not responsible for: measure it alone.
  {
    GeneratedSource probe(n, page);
    const Sample a = Sample::Now();
    Cursor c;
    ObjectRef tickets;
    tickets.object = "tickets";
    int64_t seen = 0;
    for (;;) {
      auto p = probe.ReadChanges(tickets, c, ReadContext{});
      seen += static_cast<int64_t>(p->records.size());
      if (!p->has_more) break;
      c = p->next;
    }
    const Sample b = Sample::Now();
    std::printf("  generating %" PRId64 " tickets alone: %.2f s CPU (%.2f us/record, included below)\n",
                seen, b.cpu_s() - a.cpu_s(), (b.cpu_s() - a.cpu_s()) * 1e6 / std::max<int64_t>(seen, 1));
  }

  const std::string mapping = std::string(CRMBRIDGE_SOURCE_DIR) + "/mappings/presets/onboarding.yaml";
  auto plan = LoadMappingPlan(
      {mapping}, MappingSystemsOf({{"hubspot", "hubspot"}, {"dynamics365", "dynamics365"}}));
  if (!plan.ok()) {
    std::fprintf(stderr, "mapping: %s\n", plan.status().ToString().c_str());
    return 1;
  }
  // --state postgresql://...: the same runs on a PostgreSQL store (an empty database), for the
  // cost of a server round trip per statement against SQLite's in-process calls.
  const bool state_made = !state.empty() && state_made_flag;
  auto store = state.empty() ? OpenSqliteStore(dir.path() + "/state.db") : OpenStore(state);
  if (!store.ok()) {
    std::fprintf(stderr, "store: %s\n", store.status().ToString().c_str());
    return 1;
  }
  AppConfig config;
  const long baseline_rss = Sample::Now().max_rss_kb;
  std::printf("  allocator: %s\n", cli::AllocatorName().c_str());
  std::printf("  peak RSS before the first run: %.1f MB\n\n", baseline_rss / 1024.0);

  auto run = [&](const char* label) {
    RunResult r;
    auto source = std::make_unique<GeneratedSource>(n, page);
    auto target = std::make_unique<NullTarget>(batch);
    GeneratedSource* s = source.get();
    NullTarget* t = target.get();
    std::map<std::string, std::unique_ptr<Connector>> connectors;
    connectors["hubspot"] = std::move(source);
    connectors["dynamics365"] = std::move(target);
    SyncEngine engine(&config, *plan, store->get(), std::move(connectors), Clock::Real());
    RunOptions opt;
    opt.holder = "bench";
    opt.flush_while_reading = !no_overlap;
    r.before = Sample::Now();
    auto summary = engine.RunOnce(opt);
    r.after = Sample::Now();
    if (!summary.ok()) {
      std::fprintf(stderr, "%s: %s\n", label, summary.status().ToString().c_str());
      std::exit(1);
    }
    r.summary = *summary;
    r.write_calls = t->write_calls;
    r.write_ops = t->write_ops;
    r.source_writes = s->write_calls;
    r.flush_start = t->write_calls > 0 ? t->first_write : r.after;
    const EntityCounts& in = r.summary.counts["hubspot"]["onboarding"];
    const EntityCounts& out = r.summary.counts["dynamics365"]["onboarding"];
    const double cpu = r.after.cpu_s() - r.before.cpu_s();
    const double wall = r.after.wall_s - r.before.wall_s;
    const double read_cpu = r.flush_start.cpu_s() - r.before.cpu_s();
    const double flush_cpu = r.after.cpu_s() - r.flush_start.cpu_s();
    std::printf("%s\n", label);
    std::printf("  read %" PRId64 " (changed %" PRId64 ", unchanged %" PRId64 ", rejected %" PRId64
                "); target writes %" PRId64 " in %" PRId64 " calls (created %" PRId64
                "); writes back to the source: %" PRId64 " calls\n",
                in.read, in.changed, in.unchanged, in.rejected, r.write_ops, r.write_calls,
                out.created, r.source_writes);
    std::printf("  CPU %.2f s (user %.2f, sys %.2f), wall %.2f s\n", cpu,
                r.after.user_s - r.before.user_s, r.after.sys_s - r.before.sys_s, wall);
    std::printf("    %s: %.2f s CPU; %s: %.2f s CPU\n",
                no_overlap ? "read+map+identity+diff+commit" : "until the first write",
                read_cpu, no_overlap ? "flush+outcome commit" : "from the first write (reads and writes)",
                flush_cpu);
    std::printf("  => %.0f records per CPU second (%.1f us/record); %.0f records per wall second\n",
                in.read / cpu, cpu * 1e6 / std::max<int64_t>(in.read, 1), in.read / wall);
    std::printf("  peak RSS so far: %.1f MB (current %.1f MB); state.db %.1f MB\n\n",
                r.after.max_rss_kb / 1024.0, CurrentRssKb() / 1024.0,
                (FileSize(dir.path() + "/state.db") + FileSize(dir.path() + "/state.db-wal")) / 1e6);
    return r;
  };

  RunResult first = run("run 1 (initial sync: every record created in the target)");
  std::vector<RunResult> idle;
  double idle_cpu = 0, idle_wall = 0;
  for (int i = 0; i < idle_runs; ++i) {
    const std::string label = "run " + std::to_string(i + 2) +
                              " (idle: the same records again, nothing changed)";
    idle.push_back(run(label.c_str()));
    idle_cpu += idle.back().after.cpu_s() - idle.back().before.cpu_s();
    idle_wall += idle.back().after.wall_s - idle.back().before.wall_s;
  }
  // With --idle-runs 0 the initial sync is all there is (callgrind of new records alone).
  const RunResult& last = idle.empty() ? first : idle.back();

  const double c1 = first.after.cpu_s() - first.before.cpu_s();
  const double initial_wall = first.after.wall_s - first.before.wall_s;
  const double peak_mb = last.after.max_rss_kb / 1024.0;
  // One line each, the idle figures only when there were idle runs.
  const double c2 = idle.empty() ? 0 : idle_cpu / idle_runs;
  std::printf("summary: N=%" PRId64 " initial %.0f rec/CPU-s, ", n, n / c1);
  if (idle.empty()) std::printf("no idle run; ");
  else std::printf("idle %.0f rec/CPU-s (target >= 200000); ", n / c2);
  std::printf("peak RSS %.1f MB (target < 100 MB at 1M)", peak_mb);
  if (!idle.empty()) std::printf("; idle writes %" PRId64, last.write_ops);
  std::printf("\n");
  std::printf("JSON {\"records\":%" PRId64 ",\"initial_cpu_s\":%.3f,\"initial_wall_s\":%.3f,"
              "\"initial_rec_per_cpu_s\":%.0f,",
              n, c1, initial_wall, n / c1);
  if (!idle.empty())
    std::printf("\"idle_cpu_s\":%.3f,\"idle_wall_s\":%.3f,\"idle_rec_per_cpu_s\":%.0f,", c2,
                idle_wall / idle_runs, n / c2);
  std::printf("\"peak_rss_mb\":%.1f", peak_mb);
  if (!idle.empty()) std::printf(",\"idle_writes\":%" PRId64, last.write_ops);
  std::printf("}\n");

  // The figures are of this work: run 1 wrote each ticket once, run 2 found each one unchanged.
  Checks checks;
  std::vector<const RunResult*> runs = {&first};
  for (const RunResult& r : idle) runs.push_back(&r);
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunResult* r = runs[i];
    const int run = static_cast<int>(i) + 1;
    const EntityCounts in = CountsOf(r->summary, "hubspot", "onboarding");
    const EntityCounts out = CountsOf(r->summary, "dynamics365", "onboarding");
    checks.Expect(in.read == n, "run %d read %" PRId64 " tickets, not %" PRId64, run, in.read, n);
    checks.Expect(in.rejected == 0, "run %d rejected %" PRId64 " tickets", run, in.rejected);
    checks.Expect(r->summary.TotalDeadLettered() == 0, "run %d dead-lettered %" PRId64 " writes",
                  run, r->summary.TotalDeadLettered());
    checks.Expect(r->summary.unreachable.empty(), "run %d found a system unreachable", run);
    checks.Expect(r->source_writes == 0, "run %d wrote %" PRId64 " times to the source", run,
                  r->source_writes);
    if (run == 1 && !state_made) {
      checks.Expect(in.changed == n, "run 1 changed %" PRId64 " of %" PRId64 " tickets", in.changed,
                    n);
      checks.Expect(r->write_ops == n && out.created == n,
                    "run 1 wrote %" PRId64 " records to the target and created %" PRId64
                    ", not %" PRId64,
                    r->write_ops, out.created, n);
    } else {
      checks.Expect(in.unchanged == n, "run %d found %" PRId64 " of %" PRId64 " tickets unchanged",
                    run, in.unchanged, n);
      checks.Expect(r->write_ops == 0, "run %d (idle) wrote %" PRId64 " records", run,
                    r->write_ops);
    }
  }
  return checks.ExitCode();
}

}  // namespace
}  // namespace crmbridge::bench

int main(int argc, char** argv) {
  // Line by line, so that piped figures and the log lines on stderr come out in order.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  return crmbridge::bench::Main(argc, argv);
}
