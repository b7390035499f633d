#include "src/engine/sync_engine.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "src/core/time_util.h"
#include "src/core/utf8.h"
#include "src/engine/chunk_writes.h"
#include "src/engine/merge.h"
#include "src/engine/native_record_check.h"
#include "src/engine/identity.h"
#include "src/engine/portal_access.h"
#include "src/engine/read_processor.h"
#include "src/engine/stage_history_import.h"
#include "src/engine/references.h"
#include "src/engine/write_outcome.h"
#include "src/engine/record_view.h"
#include "src/engine/write_planner.h"

namespace crmbridge {

using nlohmann::json;

namespace {

// Cursor rows are per (system, entity:object) so one native object can back several entities.
std::string CursorKey(const SystemEntityMapping& m) { return m.entity + ":" + m.object; }

ObjectRef RefFor(const SystemEntityMapping& m) {
  ObjectRef ref;
  ref.object = m.object;
  ref.params = m.params;
  for (const auto& f : m.fields) {
    ref.fields.push_back(f.native);
    if (!f.ref_entity.empty()) ref.ref_fields.insert(f.native);
  }
  return ref;
}

// `call` (a connector's read or write) as it answered, or, when it threw, a failed call: a
// connector that meets an answer it did not foresee fails that call, not the process.
template <typename Call>
auto GuardConnectorCall(Call&& call) -> decltype(call()) {
  try {
    return call();
  } catch (const std::exception& e) {
    return Status(StatusCode::kUnavailable,
                  "the answer could not be decoded: " + std::string(e.what()));
  }
}

// Backoff for outbox items between runs: 30 s doubling to 1 h, with full jitter in the upper half
// so a burst of failures does not come back as a burst.
int64_t OutboxBackoffMs(int attempts, const SyncConfig& sync) {
  const int64_t base = sync.retry_backoff.count(), cap = sync.retry_backoff_max.count();
  if (base <= 0) return 0;
  int64_t d = base << std::min(attempts, 16);
  d = std::min(d, cap);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  return d / 2 + static_cast<int64_t>(rng() % static_cast<uint64_t>(d / 2 + 1));
}

}  // namespace

// State of one RunOnce call.
class SyncEngine::Run {
 public:
  Run(SyncEngine* engine, const RunOptions& options)
      : e_(engine),
        opt_(options),
        run_start_ms_(engine->clock_->NowMillis()),
        view_(engine->store_),
        planner_(engine->plan_.get(), &view_, &tally_, options.dry_run, run_start_ms_),
        identity_(engine->plan_.get(), &view_),
        references_(engine->plan_.get(), engine->store_),
        portal_(engine->plan_.get(), engine->store_, engine->clock_, &view_, &planner_, &tally_,
                options.dry_run, run_start_ms_,
                engine->plan_->portal_access() &&
                    engine->connectors_.count(engine->plan_->portal_access()->system) > 0),
        reader_(ReadProcessor::Deps{engine->plan_.get(), engine->store_, &engine->config_->sync,
                                    &view_, &identity_, &references_, &planner_, &tally_,
                                    options.dry_run, run_start_ms_,
                                    [engine](const std::string& system) -> const Capabilities* {
                                      auto it = engine->connectors_.find(system);
                                      return it == engine->connectors_.end()
                                                 ? nullptr
                                                 : &it->second->capabilities();
                                    }}) {}

  Result<RunSummary> Execute();

 private:
  // Asked to stop (SIGTERM), or the lease was lost: the work in hand ends, nothing more starts.
  bool Stopping() const { return (opt_.stop != nullptr && opt_.stop->load()) || lease_lost_; }
  // Whether this run reads `m`: a backfill reads its system (and entity) alone.
  bool ReadsThisRun(const SystemEntityMapping& m) const {
    if (opt_.writes_only) return false;
    if (!opt_.read_ids.empty()) return m.reads() && !IdsToRead(m).empty();
    return m.reads() && (opt_.backfill_system.empty() ||
                         (m.system == opt_.backfill_system &&
                          (opt_.backfill_entity.empty() || m.entity == opt_.backfill_entity)));
  }
  // A targeted run's ids of m's object (RunOptions::read_ids), none when it names none.
  const std::vector<std::string>& IdsToRead(const SystemEntityMapping& m) const {
    static const std::vector<std::string> kNone;
    auto system = opt_.read_ids.find(m.system);
    if (system == opt_.read_ids.end()) return kNone;
    auto object = system->second.find(m.object);
    return object == system->second.end() ? kNone : object->second;
  }
  // Extends the lease while a long run works. False when another run took it over (ours had
  // expired): this run stops rather than write beside it (RunSummary::lease_lost).
  Result<bool> RenewLease() {
    auto renewed = e_->store_->AcquireLease(opt_.holder, e_->clock_->NowMillis(),
                                            e_->config_->sync.lease_ttl.count());
    if (!renewed.ok()) return renewed.status();
    if (!*renewed && !lease_lost_.exchange(true))
      spdlog::error("the run lease expired and another run took it over: this run stops");
    return *renewed;
  }
  EntityCounts& Count(const std::string& system, const std::string& entity) {
    return tally_.Count(system, entity);
  }
  void MarkUnreachable(const std::string& system, const Status& s) {
    tally_.MarkUnreachable(system, s);
  }
  bool IsMarkedUnreachable(const std::string& system) { return tally_.IsUnreachable(system); }

  // An outbox payload for m.system as crmbridge will read it back there (ReadProcessor).
  Result<json> AsReadBack(const SystemEntityMapping& m, const json& payload) {
    return reader_.AsReadBack(m, payload);
  }
  // Reads m's changes page by page; each page's records go through the ReadProcessor and are
  // committed with the page's cursor in one batch.
  Status ReadSystem(const SystemEntityMapping& m);
  // A targeted run's read of m: the records of IdsToRead(m), committed as one page without a
  // cursor.
  Status ReadAnnounced(const SystemEntityMapping& m, Connector* connector);
  // One page read: its records through the ReadProcessor, committed in one batch with `cursor`
  // (system, key, value) when given. False when the lease was lost meanwhile.
  Result<bool> CommitPage(const SystemEntityMapping& m, const std::vector<NativeRecord>& records,
                          const PageTime& page_time,
                          const std::optional<std::pair<std::string, Cursor>>& cursor);
  // Loads what the store holds for a page's records in one call (RecordView::Load), for the
  // ReadProcessor; ClearPageState drops it.
  Status LoadPageState(const SystemEntityMapping& m, const std::vector<NativeRecord>& records);
  // The first stages of the page just committed, as m.system's own history of the stage field
  // has them (stage_history_import.h); the moves the read saw when it keeps none.
  Status ImportFirstStages(const SystemEntityMapping& m,
                           std::vector<ReadProcessor::FirstStage> firsts);
  void ClearPageState();
  Status FlushSystem(const std::string& system);
  // Threads running one system's work each (its connector is used by that thread alone).
  struct SystemThreads {
    std::vector<std::thread> threads;
    std::vector<Status> results;  // sized before the threads start: they write into it
    // Waits for every thread; the first failure, if any.
    Status Join() {
      for (std::thread& t : threads) t.join();
      threads.clear();
      for (const Status& s : results)
        if (!s.ok()) return s;
      return Status::Ok();
    }
  };
  // Starts `work(system)` on a thread of its own for every system but `except`.
  SystemThreads OnEachSystem(const std::string& except,
                             Status (Run::*work)(const std::string& system));
  // Writes what is due of one entity to its system in chunks of the API's batch maximum until
  // nothing is due; with `full_chunks_only`, until less than a chunk is (then `*left` of them).
  Status FlushEntity(Connector* connector, const SystemEntityMapping& m, bool full_chunks_only,
                     size_t* left = nullptr);
  // RunOptions::flush_while_reading, for one system: after each committed page, the entities
  // whose writes may go (see the definition); returns when the reads are over.
  Status FlushWhileReading(const std::string& system);
  // Tells the flushes started by FlushWhileReading that a page was committed (`batch`, the
  // writes it queued), an entity's reads are all done, or (`done`) that reading is over.
  void ReadProgressed(bool entity_done, bool done = false, const StateBatch* batch = nullptr);
  // One chunk of m's outbox items, in the three steps of chunk_writes.h: build, Deliver,
  // ApplyOutcomes.
  Status FlushChunk(Connector* connector, const SystemEntityMapping& m,
                    const std::vector<OutboxItem>& items);
  // Records the values in doubt (RecordSending), then sends the ops; one outcome per item (those
  // not sent: a default, unused outcome).
  Result<std::vector<WriteOutcome>> Deliver(Connector* connector, const SystemEntityMapping& m,
                                            const std::vector<OutboxItem>& items,
                                            ChunkWrites* writes);
  // Each item's outcome, decided (DecideWrite) and committed in one batch: links and snapshots
  // of delivered writes, retries, waits, dead letters; the system stops on an outage.
  // Keeps one copy of each id of a page's records (the one changed last), warning of the rest.
  void DropRepeatedIds(const SystemEntityMapping& m, int page_number,
                       std::vector<NativeRecord>* records);
  Status ApplyOutcomes(const SystemEntityMapping& m, const std::vector<OutboxItem>& items,
                       const ChunkWrites& writes, const std::vector<WriteOutcome>& outcomes);
  // An update the system answered 404: the record is gone from it, deleted or merged there by a
  // user. Once crmbridge has read that (its link there marked deleted, moved to the merged
  // record, or cleared; the canonical record closed), the write is dropped, or sent on to the
  // record its link moved to, and true is returned; until then it is retried (DecideWrite).
  Result<bool> SupersededUpdate(const SystemEntityMapping& m, const OutboxItem& item,
                                StateBatch* batch);
  // Records each create of this chunk that the system does not key as sent (kSentUnrecorded,
  // chunk_writes.h), before it goes out.
  Status RecordUnkeyedCreatesSent(Connector* connector, const SystemEntityMapping& m,
                                  const std::vector<OutboxItem>& items,
                                  const std::vector<size_t>& sent);
  // Before `items[sent]` leave for m.system: their values are recorded as sent with an unknown
  // outcome (Snapshot::in_doubt) and committed, so that reading one back is known as crmbridge's
  // own write even if the answer is lost, or the process dies before it is committed.
  Status RecordSending(const SystemEntityMapping& m, const std::vector<OutboxItem>& items,
                       const std::vector<size_t>& sent);

  SyncEngine* e_;
  RunOptions opt_;
  const int64_t run_start_ms_;
  RunTally tally_;
  std::atomic<bool> lease_lost_{false};
  RunSummary& summary_ = tally_.summary();  // the orchestrator's, between threaded phases

  // The reader's view of the state: the page's uncommitted work (later records of the same page,
  // or a dry run's whole pass, must see it), the page's records as loaded, then the store.
  RecordView view_;
  WritePlanner planner_;
  Identity identity_;
  References references_;
  PortalAccess portal_;  // the portal access flow's hook
  ReadProcessor reader_;  // each record read: identity, merge, links, outbox
  // Held by a flush thread while it updates snapshots and links, and by the reader while it
  // processes and commits a page (whose records a flush may just have written).
  std::mutex flush_state_mu_;
  // One caller at a time per connector: the reader and that system's flush may share it.
  std::map<std::string, std::mutex> connector_mu_;
  // How far the reads have got, for FlushWhileReading.
  struct ReadProgress {
    std::mutex mu;
    std::condition_variable cv;
    int64_t changes = 0;       // bumped at each page commit, entity end and the end of reading
    size_t entities_done = 0;  // plan entities, in plan order, whose reads are all done
    bool done = false;         // reading is over
    // Writes queued by the committed pages, by (system, entity).
    std::map<std::pair<std::string, std::string>, int64_t> queued;
    std::set<std::pair<std::string, std::string>> read_done;  // (system, entity) read to the end

  } reading_;
};

Result<RunSummary> SyncEngine::RunOnce(const RunOptions& options) {
  Run run(this, options);
  return run.Execute();
}

SyncEngine::SyncEngine(const AppConfig* config, std::shared_ptr<const MappingPlan> plan,
                       Store* store, std::map<std::string, std::unique_ptr<Connector>> connectors,
                       Clock* clock)
    : config_(config),
      plan_(std::move(plan)),
      store_(store),
      connectors_(std::move(connectors)),
      clock_(clock) {}

SyncEngine::~SyncEngine() = default;

Result<RunSummary> SyncEngine::Run::Execute() {
  Store* store = e_->store_;
  summary_.started_ms = run_start_ms_;
  summary_.dry_run = opt_.dry_run;
  summary_.targeted = !opt_.read_ids.empty();
  summary_.writes_only = opt_.writes_only;
  tally_.set_show_every_warning(opt_.show_every_warning);

  // A dry run writes nothing, the lease included: it may run beside a real one.
  if (!opt_.dry_run) {
    auto got = store->AcquireLease(opt_.holder, run_start_ms_, e_->config_->sync.lease_ttl.count());
    if (!got.ok()) return got.status();
    if (!*got && opt_.holder_has_ended) {
      auto lease = store->GetLease();
      if (!lease.ok()) return lease.status();
      if (lease->has_value() && opt_.holder_has_ended((*lease)->holder)) {
        // Released only if that holder still has it: of two runs doing this at once, one takes it.
        spdlog::warn("the lease is held by {}, a process of this machine that has ended (killed or "
                     "crashed): it is taken over",
                     (*lease)->holder);
        CRMB_RETURN_IF_ERROR(store->ReleaseLease((*lease)->holder));
        got = store->AcquireLease(opt_.holder, run_start_ms_,
                                  e_->config_->sync.lease_ttl.count());
        if (!got.ok()) return got.status();
      }
    }
    if (!*got) {
      summary_.lease_denied = true;
      auto lease = store->GetLease();
      if (lease.ok() && lease->has_value()) summary_.lease_holder = (*lease)->holder;
      summary_.finished_ms = e_->clock_->NowMillis();
      return summary_;
    }
    auto run_id = store->BeginRun(opt_.mode, run_start_ms_);
    if (!run_id.ok()) {
      (void)store->ReleaseLease(opt_.holder);
      return run_id.status();
    }
    summary_.run_id = *run_id;
  }

  Status failure;
  for (const auto& [system, connector] : e_->connectors_) connector_mu_[system];
  const std::string portal_first = portal_.system();
  // Writes may start while reading goes on (RunOptions::flush_while_reading). Not the portal's:
  // they follow from the reads as a whole (PortalAccess::AfterReads).
  SystemThreads early;
  if (!opt_.dry_run && opt_.flush_while_reading)
    early = OnEachSystem(portal_first, &Run::FlushWhileReading);

  // Reads: entities in dependency order, so a company is linked before its contacts refer to it.
  for (const CanonicalEntity& entity : e_->plan_->entities()) {
    for (const SystemEntityMapping& m : e_->plan_->mappings()) {
      if (m.entity != entity.name || !ReadsThisRun(m) || Stopping()) continue;
      if (IsMarkedUnreachable(m.system)) continue;
      Status s = ReadSystem(m);
      if (!s.ok()) {
        failure = s;
        break;
      }
      std::lock_guard<std::mutex> lock(reading_.mu);
      reading_.read_done.insert({m.system, m.entity});
    }
    if (!failure.ok()) break;
    ReadProgressed(/*entity_done=*/true);
  }
  ReadProgressed(false, /*done=*/true);
  if (Status s = early.Join(); !s.ok() && failure.ok()) failure = s;

  // Portal access follows from what the reads left in the snapshots.
  if (failure.ok() && !Stopping() && opt_.backfill_system.empty() && !opt_.writes_only) {
    Status s = portal_.AfterReads();
    if (!s.ok()) failure = s;
  }

  // Flush what is left: one thread per system. The portal goes first, alone: what it answers
  // (user ids, grant states) is written back to the contact's other systems by the flushes that
  // follow, in this same run.
  if (failure.ok() && !opt_.dry_run && !Stopping() && e_->connectors_.count(portal_first)) {
    Status s = FlushSystem(portal_first);
    if (!s.ok()) failure = s;
  }
  if (failure.ok() && !opt_.dry_run && !Stopping()) {
    if (Status s = OnEachSystem(portal_first, &Run::FlushSystem).Join(); !s.ok()) failure = s;
  }

  tally_.LogHiddenWarnings();
  summary_.finished_ms = e_->clock_->NowMillis();
  if (!opt_.dry_run) {
    RunRecord rec;
    rec.id = summary_.run_id;
    rec.mode = opt_.mode;
    rec.started_ms = summary_.started_ms;
    rec.finished_ms = summary_.finished_ms;
    json counts = summary_.ToJson();
    rec.counts = counts["systems"];
    rec.counts["writes"] = summary_.TotalWrites();
    rec.counts["dead_lettered"] = summary_.TotalDeadLettered();
    rec.outcome = !failure.ok()                       ? "failed"
                  : !summary_.unreachable.empty()      ? "unreachable"
                  : summary_.TotalDeadLettered() > 0   ? "dead-lettered"
                                                       : "ok";
    rec.error = failure.ok() ? "" : failure.ToString();
    if (lease_lost_) {
      summary_.lease_lost = true;
      if (failure.ok()) rec.outcome = "lease lost";
      if (rec.error.empty()) rec.error = "the run lease expired and another run took it over";
    }
    Status fs = store->FinishRun(rec);
    if (!fs.ok()) spdlog::error("could not record the run: {}", fs.ToString());
    // A lost lease is the other run's now.
    Status rs = lease_lost_ ? Status::Ok() : store->ReleaseLease(opt_.holder);
    if (!rs.ok()) spdlog::error("could not release the lease: {}", rs.ToString());
  }
  if (!failure.ok()) return failure;
  return summary_;
}

Status SyncEngine::Run::ReadSystem(const SystemEntityMapping& m) {
  Store* store = e_->store_;
  auto it = e_->connectors_.find(m.system);
  if (it == e_->connectors_.end())
    return Status(StatusCode::kFailedPrecondition, "no connector for system " + m.system);
  Connector* connector = it->second.get();
  if (!opt_.read_ids.empty()) return ReadAnnounced(m, connector);

  // A backfill reads on its own checkpoint, so the incremental cursor never moves backwards.
  const bool backfill = !opt_.backfill_system.empty();
  const std::string cursor_key = backfill ? "backfill:" + CursorKey(m) : CursorKey(m);
  auto stored = store->GetCursor(m.system, cursor_key);
  if (!stored.ok()) return stored.status();
  Cursor cursor = stored->value_or("");
  ObjectRef ref = RefFor(m);
  ReadContext ctx;
  ctx.run_start_ms = run_start_ms_;
  ctx.page_size = opt_.page_size;
  if (backfill) ctx.since_ms = opt_.since_ms;
  int64_t read_so_far = 0;

  spdlog::info("reading {} {} ({}) from {}", m.system, m.object, m.entity,
               cursor.empty() ? "the beginning" : "the stored cursor");
  const bool scan_from_start = cursor.empty();
  // The cursors this read has started pages from: a next page that is one of them is a loop.
  std::unordered_set<std::string> pages_read;
  // Each page's records, as one hash of their ids: a next-page link that changes each time (a
  // counter in a skip token) while the pages repeat the same records is a loop too.
  std::unordered_set<uint64_t> page_records_read;
  auto records_hash = [](const std::vector<NativeRecord>& records) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a over the ids, each ended by a 0 byte
    for (const NativeRecord& r : records) {
      for (char c : r.id) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ull;
      h = (h ^ 0u) * 1099511628211ull;
    }
    return h;
  };
  int page_number = 0;
  while (!Stopping()) {
    PageTime page_time;
    ++page_number;
    pages_read.insert(cursor);
    Result<Page> page = [&]() -> Result<Page> {
      std::lock_guard<std::mutex> lock(connector_mu_.at(m.system));
      page_time.started_ms = e_->clock_->NowMillis();
      Result<Page> read =
          GuardConnectorCall([&] { return connector->ReadChanges(ref, cursor, ctx); });
      page_time.received_ms = e_->clock_->NowMillis();
      page_time.precision_ms = connector->capabilities().modified_precision_ms;
      page_time.current = backfill;
      if (read.ok() && read->has_more && pages_read.count(read->next)) {
        return Status(StatusCode::kUnavailable,
                      "the answer's next-page link points back at a page this read has already "
                      "read: a paging loop");
      }
      if (read.ok() && read->has_more && !read->records.empty() &&
          !page_records_read.insert(records_hash(read->records)).second) {
        return Status(StatusCode::kUnavailable,
                      "the page holds the same " + std::to_string(read->records.size()) +
                          " records as an earlier page of this read, and links to yet another "
                          "page: a paging loop");
      }
      return read;
    }();
    if (!page.ok()) {
      // Whatever the cause (network, credentials, a query the API refuses), the system sits out
      // the rest of this run and the run exits 4; its cursor is unchanged, so the next run reads
      // the same changes again.
      // Nothing of the failed page is committed.
      Status s = page.status();
      s.set_system(m.system);
      spdlog::error("{}: reading {} failed at page {} of this read ({}), skipping this system for "
                    "the run: {}",
                    m.system, m.object, page_number,
                    cursor.empty() ? std::string("from the beginning")
                                   : "from cursor " + std::string(Utf8Prefix(cursor, 200)),
                    s.ToString());
      MarkUnreachable(m.system, s);
      return Status::Ok();
    }
    DropRepeatedIds(m, page_number, &page->records);
    // The finished backfill's checkpoint is cleared: the next backfill starts over.
    auto held = CommitPage(m, page->records, page_time,
                           std::make_pair(cursor_key, backfill && !page->has_more ? "" : page->next));
    if (!held.ok()) return held.status();
    if (!*held) return Status::Ok();  // Stopping(): the run ends
    read_so_far += static_cast<int64_t>(page->records.size());
    if (opt_.progress) opt_.progress(read_so_far, page->total);
    cursor = page->next;
    if (!page->has_more) {
      // A full scan, start to end: an unconfirmed write whose record it never returned was lost.
      if (scan_from_start && cursor.empty()) {
        std::lock_guard<std::mutex> state_lock(flush_state_mu_);
        StateBatch lost;
        CRMB_RETURN_IF_ERROR(reader_.VerifyMissing(m, &lost));
        if (opt_.dry_run || lost.empty()) return Status::Ok();
        return store->Apply(lost);
      }
      break;
    }
  }
  return Status::Ok();
}

void SyncEngine::Run::DropRepeatedIds(const SystemEntityMapping& m, int page_number,
                                       std::vector<NativeRecord>* records) {
  // One id twice in one page (a broken answer, or paging that met a change): processed in turn,
  // the second copy would overwrite the first silently. The copy changed last is the record
  // (the later one in the page on a tie); the other is passed over, and said so.
  std::unordered_map<std::string_view, size_t> kept;  // id -> the index of its copy kept
  std::vector<char> drop(records->size(), 0);
  bool any = false;
  for (size_t i = 0; i < records->size(); ++i) {
    auto [it, fresh] = kept.emplace((*records)[i].id, i);
    if (fresh) continue;
    any = true;
    const size_t before = it->second;
    const bool later = (*records)[i].modified_ms >= (*records)[before].modified_ms;
    drop[later ? before : i] = 1;
    if (later) it->second = i;
    if (tally_.ShowRecordWarning(m.system, m.object + " given twice in one page"))
      spdlog::warn("{}: {} {} came twice in page {} of this read; the copy changed last is read, "
                   "the other passed over",
                   m.system, m.object, ShownId((*records)[i].id), page_number);
  }
  if (!any) return;
  std::vector<NativeRecord> out;
  out.reserve(records->size());
  for (size_t i = 0; i < records->size(); ++i)
    if (!drop[i]) out.push_back(std::move((*records)[i]));
  *records = std::move(out);
}

Result<bool> SyncEngine::Run::CommitPage(
    const SystemEntityMapping& m, const std::vector<NativeRecord>& records,
    const PageTime& page_time, const std::optional<std::pair<std::string, Cursor>>& cursor) {
  // A flush running beside the reads may just have written some of these records: the page's
  // read-modify-write of their snapshots and links does not interleave with its own.
  std::unique_lock<std::mutex> state_lock(flush_state_mu_);
  StateBatch batch;
  CRMB_RETURN_IF_ERROR(LoadPageState(m, records));
  reader_.SetPageTime(page_time);
  for (const NativeRecord& record : records) CRMB_RETURN_IF_ERROR(reader_.Process(m, record, &batch));
  std::vector<ReadProcessor::FirstStage> firsts = reader_.TakeFirstStages();
  ClearPageState();
  if (opt_.dry_run) return true;
  if (cursor) batch.SetCursor(m.system, cursor->first, cursor->second);
  CRMB_RETURN_IF_ERROR(e_->store_->Apply(batch));
  auto held = RenewLease();
  if (!held.ok()) return held.status();
  ReadProgressed(/*entity_done=*/false, false, &batch);
  view_.ClearPending();
  if (!firsts.empty() && *held) {
    // After the page's commit and outside the state lock: the history is read over HTTP, and a
    // flush may wait on this system's connector while holding that lock.
    state_lock.unlock();
    CRMB_RETURN_IF_ERROR(ImportFirstStages(m, std::move(firsts)));
  }
  return *held;
}

Status SyncEngine::Run::ImportFirstStages(const SystemEntityMapping& m,
                                          std::vector<ReadProcessor::FirstStage> firsts) {
  const FieldMap* stage_field = nullptr;
  for (const FieldMap& f : m.fields)
    if (f.canonical == kStageField && f.reads()) stage_field = &f;
  Connector* connector = e_->connectors_.at(m.system).get();
  std::map<std::string, std::vector<FieldChange>> history;
  if (stage_field != nullptr && connector->capabilities().reads_field_history) {
    std::vector<std::string> ids;
    for (const auto& f : firsts) ids.push_back(f.native_id);
    Result<std::map<std::string, std::vector<FieldChange>>> read =
        Status(StatusCode::kInternal, "");
    {
      std::lock_guard<std::mutex> lock(connector_mu_.at(m.system));
      read = GuardConnectorCall(
          [&] { return connector->ReadFieldHistory(RefFor(m), stage_field->native, ids); });
    }
    if (read.ok()) {
      history = std::move(*read);
    } else {
      // The records sync all the same; their history starts now, as it would without one.
      spdlog::warn("{}: the stage history of {} new {} could not be read; it starts now: {}",
                   m.system, firsts.size(), m.object, read.status().ToString());
    }
  }
  StateBatch batch;
  int64_t imported = 0;
  for (const ReadProcessor::FirstStage& f : firsts) {
    auto past = history.find(f.native_id);
    if (stage_field == nullptr || past == history.end()) {
      batch.AddStageTransition(f.transition);
      continue;
    }
    for (const StageTransition& t : ImportedStages(*stage_field, past->second, f.transition)) {
      imported += t.imported ? 1 : 0;
      batch.AddStageTransition(t);
    }
  }
  if (imported > 0)
    spdlog::info("{}: imported {} earlier stage move(s) of {} new {}", m.system, imported,
                 firsts.size(), m.object);
  return e_->store_->Apply(batch);
}

Status SyncEngine::Run::ReadAnnounced(const SystemEntityMapping& m, Connector* connector) {
  const std::vector<std::string>& ids = IdsToRead(m);
  spdlog::info("reading {} {} ({}): {} announced record(s)", m.system, m.object, m.entity,
               ids.size());
  PageTime page_time;
  Result<std::vector<NativeRecord>> read = [&]() -> Result<std::vector<NativeRecord>> {
    std::lock_guard<std::mutex> lock(connector_mu_.at(m.system));
    page_time.started_ms = e_->clock_->NowMillis();
    Result<std::vector<NativeRecord>> records =
        GuardConnectorCall([&] { return connector->ReadByIds(RefFor(m), ids); });
    page_time.received_ms = e_->clock_->NowMillis();
    page_time.precision_ms = connector->capabilities().modified_precision_ms;
    page_time.current = true;  // read by id
    return records;
  }();
  if (!read.ok()) {
    // As a failed page: the system sits out the run; the announced changes stay pending.
    Status s = read.status();
    s.set_system(m.system);
    spdlog::error("{}: reading the announced {} failed, skipping this system for the run: {}",
                  m.system, m.object, s.ToString());
    MarkUnreachable(m.system, s);
    return Status::Ok();
  }
  // An id announced deleted that the system no longer shows is gone: read as its tombstone.
  if (auto system = opt_.gone_ids.find(m.system); system != opt_.gone_ids.end()) {
    if (auto gone = system->second.find(m.object); gone != system->second.end()) {
      std::set<std::string> shown;
      for (const NativeRecord& r : *read) shown.insert(r.id);
      for (const std::string& id : gone->second) {
        if (shown.count(id)) continue;  // restored since, or the event was not the last word
        NativeRecord tombstone;
        tombstone.id = id;
        tombstone.deleted = true;
        read->push_back(std::move(tombstone));
      }
    }
  }
  auto held = CommitPage(m, *read, page_time, std::nullopt);
  if (!held.ok()) return held.status();
  if (opt_.progress) opt_.progress(static_cast<int64_t>(read->size()), -1);
  return Status::Ok();
}

Status SyncEngine::Run::LoadPageState(const SystemEntityMapping& m,
                                      const std::vector<NativeRecord>& records) {
  std::vector<std::string> ids;
  ids.reserve(records.size());
  for (const NativeRecord& record : records)
    if (!record.deleted) ids.push_back(record.id);
  return view_.Load(m.system, m.entity, ids);
}

void SyncEngine::Run::ClearPageState() { view_.Unload(); }

Status SyncEngine::Run::FlushSystem(const std::string& system) {
  if (IsMarkedUnreachable(system)) return Status::Ok();
  Connector* connector = e_->connectors_.at(system).get();
  const int max_batch = std::max(1, connector->capabilities().max_batch);
  // Items are fetched in slices; each slice is written in chunks of the API's batch maximum.
  const int slice = max_batch * 10;
  // Entities in dependency order: a company exists in the system before the contacts and
  // onboardings that refer to it are written. Every item handed to FlushChunk leaves the due set
  // (completed, dead-lettered, or retried at a later time) unless the system is marked
  // unreachable, so each loop ends.
  // Deletes (revoked portal access among them) go first, never behind a backlog of writes.
  while (!Stopping() && !IsMarkedUnreachable(system)) {
    auto due = e_->store_->DueOutbox(
        OutboxFilter(system, e_->clock_->NowMillis(), slice).DeletesOnly());
    if (!due.ok()) return due.status();
    if (due->empty()) break;
    std::map<std::string, std::vector<OutboxItem>> by_entity;
    for (OutboxItem& item : *due) by_entity[item.entity].push_back(std::move(item));
    for (auto& [entity, items] : by_entity) {
      const SystemEntityMapping* m = e_->plan_->Find(system, entity);
      if (m == nullptr) {
        spdlog::warn("{}: {} delete(s) of {} have no mapping any more; left in the outbox", system,
                     items.size(), entity);
        return Status::Ok();
      }
      for (size_t i = 0; i < items.size() && !Stopping(); i += max_batch) {
        std::vector<OutboxItem> chunk(items.begin() + i,
                                      items.begin() + std::min(items.size(), i + max_batch));
        auto held = RenewLease();
        if (!held.ok()) return held.status();
        if (!*held) return Status::Ok();
        CRMB_RETURN_IF_ERROR(FlushChunk(connector, *m, chunk));
        if (IsMarkedUnreachable(system)) return Status::Ok();
      }
    }
  }
  for (const CanonicalEntity& entity : e_->plan_->entities()) {
    const SystemEntityMapping* m = e_->plan_->Find(system, entity.name);
    if (m != nullptr) CRMB_RETURN_IF_ERROR(FlushEntity(connector, *m, false));
  }
  if (Stopping() || IsMarkedUnreachable(system)) return Status::Ok();
  // Rows of an entity the mapping no longer names for this system stay queued for a mapping that
  // does, rather than dropping customer data.
  auto left = e_->store_->DueOutbox(OutboxFilter(system, e_->clock_->NowMillis(), 1));
  if (!left.ok()) return left.status();
  if (!left->empty())
    spdlog::warn("{}: outbox items for {} have no mapping any more; left in the outbox", system,
                 left->front().entity);
  return Status::Ok();
}

SyncEngine::Run::SystemThreads SyncEngine::Run::OnEachSystem(
    const std::string& except, Status (Run::*work)(const std::string& system)) {
  SystemThreads out;
  out.results.resize(e_->connectors_.size());
  size_t i = 0;
  for (const auto& [system, connector] : e_->connectors_) {
    if (system == except) continue;
    Status* result = &out.results[i++];
    out.threads.emplace_back([this, work, name = system, result] { *result = (this->*work)(name); });
  }
  return out;
}

Status SyncEngine::Run::FlushEntity(Connector* connector, const SystemEntityMapping& m,
                                    bool full_chunks_only, size_t* left) {
  const size_t max_batch = std::max(1, connector->capabilities().max_batch);
  // Items are fetched in slices; each slice is written in chunks of the API's batch maximum.
  const int slice = static_cast<int>(max_batch) * 10;
  if (left != nullptr) *left = 0;
  while (!Stopping() && !IsMarkedUnreachable(m.system)) {
    auto due = e_->store_->DueOutbox(
        OutboxFilter(m.system, e_->clock_->NowMillis(), slice).ForEntity(m.entity));
    if (!due.ok()) return due.status();
    size_t n = due->size();
    // Fewer than a slice: everything due when asked. While reading, what is left is less than a
    // chunk, looked at again when enough more is queued, not read again at once.
    const bool last_slice = full_chunks_only && n < static_cast<size_t>(slice);
    if (full_chunks_only) {
      if (left != nullptr) *left = n % max_batch;
      n -= n % max_batch;
    }
    if (n == 0) break;
    for (size_t i = 0; i < n && !Stopping(); i += max_batch) {
      std::vector<OutboxItem> chunk(due->begin() + i, due->begin() + std::min(n, i + max_batch));
      // Checked before writing: a run whose lease another run took over writes nothing more.
      auto held = RenewLease();
      if (!held.ok()) return held.status();
      if (!*held) return Status::Ok();
      CRMB_RETURN_IF_ERROR(FlushChunk(connector, m, chunk));
      if (IsMarkedUnreachable(m.system)) return Status::Ok();
    }
    if (last_slice) break;
  }
  return Status::Ok();
}

void SyncEngine::Run::ReadProgressed(bool entity_done, bool done, const StateBatch* batch) {
  {
    std::lock_guard<std::mutex> lock(reading_.mu);
    ++reading_.changes;
    if (batch != nullptr)
      for (const StateBatch::Op& op : batch->ops())
        if (op.kind == StateBatch::Op::Kind::kEnqueue)
          ++reading_.queued[{op.outbox().system, op.outbox().entity}];
    if (entity_done) ++reading_.entities_done;
    if (done) reading_.done = true;
  }
  reading_.cv.notify_all();
}

Status SyncEngine::Run::FlushWhileReading(const std::string& system) {
  Connector* connector = e_->connectors_.at(system).get();
  const size_t max_batch = std::max(1, connector->capabilities().max_batch);
  const std::vector<CanonicalEntity>& entities = e_->plan_->entities();
  // Per entity, in plan order: what was due but less than a chunk when last looked at, and
  // whether it was written out after its reads were done (later pages cannot add to it).
  std::vector<size_t> left(entities.size(), 0);
  std::vector<char> drained(entities.size(), 0);
  std::vector<int64_t> queued_at_look(entities.size(), 0);  // ReadProgress::queued then
  int64_t seen_changes = 0;
  while (true) {
    size_t entities_done = 0;
    std::vector<int64_t> queued(entities.size(), 0);
    std::vector<char> read_here(entities.size(), 0);  // this system's reads of it are done
    {
      std::unique_lock<std::mutex> lock(reading_.mu);
      reading_.cv.wait(lock, [&] { return reading_.done || reading_.changes != seen_changes; });
      if (reading_.done) return Status::Ok();
      seen_changes = reading_.changes;
      entities_done = reading_.entities_done;
      for (size_t e = 0; e < entities.size(); ++e) {
        const std::pair<std::string, std::string> key{system, entities[e].name};
        if (auto it = reading_.queued.find(key); it != reading_.queued.end()) queued[e] = it->second;
        read_here[e] = reading_.read_done.count(key) > 0;
      }
    }
    if (Stopping() || IsMarkedUnreachable(system)) return Status::Ok();
    // Entities in plan order, as FlushSystem, so nothing is written before the records it may
    // refer to. An entity is written to a system only once this run has read it there: a write
    // must not land before the change or the matching record it would have been merged with.
    for (size_t e = 0; e < entities.size(); ++e) {
      const SystemEntityMapping* m = e_->plan_->Find(system, entities[e].name);
      if (m == nullptr || drained[e]) continue;
      if (ReadsThisRun(*m) && !read_here[e]) break;
      const bool complete = e < entities_done;  // read everywhere: nothing more will be queued
      // Until then, only whole chunks go, and a look (which reads the due items with their
      // payloads) waits until enough may have been queued since the last one for a chunk.
      if (complete ||
          left[e] + static_cast<size_t>(queued[e] - queued_at_look[e]) >= max_batch) {
        CRMB_RETURN_IF_ERROR(FlushEntity(connector, *m, !complete, &left[e]));
        queued_at_look[e] = queued[e];
        if (complete) drained[e] = 1;
      }
      if (!complete) break;
    }
  }
}

Status SyncEngine::Run::RecordSending(const SystemEntityMapping& m,
                                      const std::vector<OutboxItem>& items,
                                      const std::vector<size_t>& sent) {
  // A system crmbridge never reads cannot echo anything back.
  if (!m.reads()) return Status::Ok();
  // The reader's view resolves references, and the snapshots are read, changed and written back.
  std::lock_guard<std::mutex> state_lock(flush_state_mu_);
  std::unordered_map<std::string, json> values;  // canonical id -> the canonical values sent
  StateBatch batch;
  for (size_t i : sent) {
    const OutboxItem& item = items[i];
    if (item.entity != m.entity || item.system != m.system) continue;
    if (item.op == OutboxOp::kDelete && !item.native_id.empty()) {
      // Its tombstone, read back even if the answer is lost, is then known as crmbridge's own
      // delete (ReadProcessor::OwnDeleteReadBack), not a user's to carry elsewhere.
      auto link = e_->store_->FindLink(item.entity, item.canonical_id, item.system);
      if (!link.ok()) return link.status();
      if (link->has_value() && (*link)->native_id == item.native_id &&
          (*link)->last_written_hash != WritePlanner::kDeleteHash) {
        Link sending = **link;
        sending.last_written_hash = WritePlanner::kDeleteHash;
        sending.updated_ms = e_->clock_->NowMillis();  // read unchanged since: not a restore
        batch.PutLink(sending);
      }
      continue;
    }
    if (item.op == OutboxOp::kDelete || item.op == OutboxOp::kMerge) continue;
    auto back = AsReadBack(m, item.payload);
    if (!back.ok()) return back.status();
    if (!back->is_null()) values[item.canonical_id] = std::move(*back);
  }
  if (values.empty()) return batch.empty() ? Status::Ok() : e_->store_->Apply(batch);
  std::vector<std::string> ids;
  ids.reserve(values.size());
  for (const auto& [cid, v] : values) ids.push_back(cid);
  auto loaded = e_->store_->LoadRecords(m.entity, m.system, {}, ids);
  if (!loaded.ok()) return loaded.status();
  const int64_t now = e_->clock_->NowMillis();
  for (auto& [cid, snap] : loaded->snapshots) {
    AddInDoubt(&snap, m.system, values[cid], now);
    batch.PutSnapshot(snap);
  }
  return batch.empty() ? Status::Ok() : e_->store_->Apply(batch);
}

Status SyncEngine::Run::RecordUnkeyedCreatesSent(Connector* connector,
                                                  const SystemEntityMapping& m,
                                                  const std::vector<OutboxItem>& items,
                                                  const std::vector<size_t>& sent) {
  const std::vector<std::string>& unkeyed = connector->capabilities().unkeyed_creates;
  if (std::find(unkeyed.begin(), unkeyed.end(), m.object) == unkeyed.end()) return Status::Ok();
  StateBatch batch;
  const int64_t now = e_->clock_->NowMillis();
  for (size_t i : sent) {
    const OutboxItem& item = items[i];
    // A later attempt looks first anyway (WriteOp::attempt), and an update names its record.
    if (item.op != OutboxOp::kUpsert || !item.native_id.empty() || item.attempts > 0 ||
        item.last_error == kSentUnrecorded)
      continue;
    batch.RetryOutbox(item.id, kSentUnrecorded, now, /*count_attempt=*/false, item.payload_hash);
  }
  return batch.empty() ? Status::Ok() : e_->store_->Apply(batch);
}

Status SyncEngine::Run::FlushChunk(Connector* connector, const SystemEntityMapping& m,
                                   const std::vector<OutboxItem>& items) {
  // 1. Build (chunk_writes.h): references become the target system's ids; a write whose
  // referenced record is not there yet waits (a record is flushed after the records it refers
  // to, so that is a failure upstream).
  References::Chunk refs;  // read once for the chunk
  CRMB_RETURN_IF_ERROR(
      references_.LoadChunk(m, items, connector->capabilities().adds_references, &refs));
  auto writes = BuildChunkWrites(references_, m, items, refs);
  if (!writes.ok()) return writes.status();
  // 2. Deliver.
  auto outcomes = Deliver(connector, m, items, &*writes);
  if (!outcomes.ok()) return outcomes.status();
  // 3. Apply the outcomes.
  return ApplyOutcomes(m, items, *writes, *outcomes);
}

Result<std::vector<WriteOutcome>> SyncEngine::Run::Deliver(Connector* connector,
                                                           const SystemEntityMapping& m,
                                                           const std::vector<OutboxItem>& items,
                                                           ChunkWrites* writes) {
  std::vector<WriteOutcome> outcomes(items.size());
  if (writes->ops.empty()) return outcomes;
  CRMB_RETURN_IF_ERROR(RecordSending(m, items, writes->sent_index));
  CRMB_RETURN_IF_ERROR(RecordUnkeyedCreatesSent(connector, m, items, writes->sent_index));
  auto written = [&] {
    std::lock_guard<std::mutex> lock(connector_mu_.at(m.system));
    // A write that threw may have landed: the values it sent were recorded as in doubt above.
    return GuardConnectorCall([&] { return connector->Write(RefFor(m), writes->ops); });
  }();
  if (written.ok() && written->size() != writes->ops.size()) {
    return Status(StatusCode::kInternal,
                  std::string(connector->Name()) + " returned " + std::to_string(written->size()) +
                      " outcomes for " + std::to_string(writes->ops.size()) + " writes");
  }
  for (size_t k = 0; k < writes->sent_index.size(); ++k)
    outcomes[writes->sent_index[k]] =
        written.ok() ? std::move((*written)[k]) : WriteOutcome{written.status(), "", false};
  // An id the answer gives a written record is checked as a read's would be, and one id given to
  // two created records is no answer either: stored, it would link a record to what is not its
  // copy (or fail the whole batch on the links' unique key). Whether such a write was applied is
  // unknown; a later attempt (an upsert by key, a create looked up first) settles it.
  std::unordered_map<std::string, size_t> given;  // id -> the first upsert it was given to
  auto not_understood = [&](size_t i, const std::string& why) {
    outcomes[i].status = Status(StatusCode::kUnavailable, m.system + ": the answer for " +
                                                              m.entity + " " +
                                                              items[i].canonical_id + " " + why)
                             .set_http_status(200)
                             .set_system(m.system);
  };
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (!outcomes[i].status.ok() || outcomes[i].native_id.empty()) continue;
    if (Status bad = CheckWrittenId(outcomes[i].native_id); !bad.ok()) {
      not_understood(i, "is no id crmbridge can keep: " + bad.message());
      continue;
    }
    if (items[i].op != OutboxOp::kUpsert) continue;  // merges name one survivor many times
    auto [first, fresh] = given.emplace(outcomes[i].native_id, i);
    if (fresh) continue;
    const std::string id = ShownId(outcomes[i].native_id);
    not_understood(i, "gives it the id " + id + ", given to " + items[first->second].canonical_id +
                          " too");
    if (outcomes[first->second].status.ok())
      not_understood(first->second, "gives it the id " + id + ", given to " +
                                        items[i].canonical_id + " too");
  }
  return outcomes;
}

Result<bool> SyncEngine::Run::SupersededUpdate(const SystemEntityMapping& m,
                                               const OutboxItem& item, StateBatch* batch) {
  auto link = e_->store_->FindLink(item.entity, item.canonical_id, item.system);
  if (!link.ok()) return link.status();
  auto snap = e_->store_->GetSnapshot(item.entity, item.canonical_id);
  if (!snap.ok()) return snap.status();
  const bool closed = snap->has_value() && (**snap).deleted_ms > 0;
  const std::string linked_id = link->has_value() ? (*link)->native_id : "";
  const bool deleted_there =
      linked_id == item.native_id && (*link)->last_read_hash == kDeletedReadHash;
  if (!closed && !deleted_there) {
    if (linked_id == item.native_id) return false;  // gone there, not read yet: retried
    if (!linked_id.empty()) {
      spdlog::info("{}: {} {} is gone; {} {} is now {} there: the update goes to it", m.system,
                   m.object, item.native_id, item.entity, item.canonical_id, linked_id);
      // Replaces the item (Enqueue coalesces by record): the same write, to the record's new
      // id, with fresh attempts.
      batch->Enqueue(WritePlanner::NewOutboxItem(m, item.canonical_id, item.op, linked_id,
                                                 item.payload, e_->clock_->NowMillis(),
                                                 item.payload_hash));
      return true;
    }
  }
  spdlog::info("{}: {} {} is gone ({}); the update of {} {} queued for it is dropped", m.system,
               m.object, item.native_id,
               closed ? "its record was deleted or merged" : "deleted or merged there",
               item.entity, item.canonical_id);
  batch->CompleteOutbox(item.id, item.payload_hash);
  return true;
}

Status SyncEngine::Run::ApplyOutcomes(const SystemEntityMapping& m,
                                      const std::vector<OutboxItem>& items,
                                      const ChunkWrites& writes,
                                      const std::vector<WriteOutcome>& outcomes) {
  const std::vector<RefWait>& waits = writes.waits;
  const std::vector<char>& skipped = writes.nothing_to_do;
  // Systems flush in parallel, and two of them may have written the same record: the snapshot's
  // read-modify-write below (each adds what its system now holds) must not interleave, or one
  // system's update of Snapshot::seen is lost and its next read looks like a change.
  std::lock_guard<std::mutex> state_lock(flush_state_mu_);
  // The links and snapshots of the delivered records, read in one call.
  std::vector<std::string> delivered;
  delivered.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i)
    if (outcomes[i].status.ok() && !waits[i].waiting && !skipped[i] &&
        items[i].entity == m.entity && items[i].system == m.system)
      delivered.push_back(items[i].canonical_id);
  RecordView chunk(e_->store_);
  CRMB_RETURN_IF_ERROR(chunk.Load(m.system, m.entity, {}, delivered));
  auto find_link = [&](const OutboxItem& item) {
    return chunk.LinkOf(RecordKey{item.entity, item.canonical_id}, item.system);
  };
  auto find_snapshot = [&](const OutboxItem& item) {
    return chunk.SnapshotOf(RecordKey{item.entity, item.canonical_id});
  };
  StateBatch batch;
  EntityCounts& counts = Count(m.system, m.entity);
  const int64_t now = e_->clock_->NowMillis();
  for (size_t i = 0; i < items.size(); ++i) {
    const OutboxItem& item = items[i];
    if (skipped[i]) {
      batch.CompleteOutbox(item.id, item.payload_hash);
      continue;
    }
    Status st = outcomes[i].status;
    if (st.system().empty()) st.set_system(m.system);
    WriteAttempt attempt;
    attempt.status = st;
    attempt.wait = waits[i];
    attempt.attempts = item.attempts;
    attempt.max_attempts = e_->config_->sync.max_outbox_attempts;
    // Once per run, so a flush loop cannot spin on it.
    if (waits[i].waiting) {
      ++counts.waiting_on_refs;
      attempt.first_wait = waits[i].on_its_way && tally_.FirstWait(item.id);
    }
    if (st.code() == StatusCode::kNotFound && item.op == OutboxOp::kUpdate && !waits[i].waiting) {
      auto superseded = SupersededUpdate(m, item, &batch);
      if (!superseded.ok()) return superseded.status();
      if (*superseded) continue;
      attempt.record_gone = true;
    }
    const WriteDecision decision = DecideWrite(attempt);
    const std::string error = waits[i].waiting ? waits[i].reason : st.ToString();
    if (decision == WriteDecision::kDone && item.op == OutboxOp::kMerge) {
      // The absorbed copy is no more; the survivor's copy keeps its link, under the id the
      // system gives the merged record.
      batch.CompleteOutbox(item.id, item.payload_hash);
      ++counts.merged;
      const std::string survivor = item.payload.value("survivor", "");
      const std::string into = item.payload.value("into", "");
      auto absorbed = find_link(item);
      if (!absorbed.ok()) return absorbed.status();
      if (absorbed->has_value() && (*absorbed)->native_id == item.native_id) {
        batch.PutLink(ClearedLink(**absorbed, now));
      }
      if (!outcomes[i].native_id.empty() && outcomes[i].native_id != into && !survivor.empty()) {
        auto kept = e_->store_->FindLink(item.entity, survivor, item.system);
        if (!kept.ok()) return kept.status();
        if (kept->has_value() && (*kept)->native_id == into) {
          Link renamed = **kept;
          renamed.native_id = outcomes[i].native_id;
          renamed.updated_ms = now;
          batch.PutLink(renamed);
        }
      }
      spdlog::info("{}: {} {} merged into {}", m.system, m.object, item.native_id, into);
      continue;
    }
    if (decision == WriteDecision::kDone) {
      if (portal_.OnDelivered(item, outcomes[i], &batch)) continue;
      // The record's snapshot, copied out of the chunk's view at most once.
      std::optional<Result<std::optional<Snapshot>>> snapshot_read;
      auto snapshot = [&]() -> Result<std::optional<Snapshot>>& {
        if (!snapshot_read) snapshot_read.emplace(find_snapshot(item));
        return *snapshot_read;
      };
      auto existing = find_link(item);
      if (!existing.ok()) return existing.status();
      Link link = existing->value_or(Link{});
      if (item.op == OutboxOp::kUpdate && link.native_id.empty() && !item.native_id.empty()) {
        // Queued for a copy that has since moved to another record (a merge followed while the
        // write waited): delivered, and the copy stays where the merge put it.
        auto owner = e_->store_->FindLinkByNative(item.system, item.entity, item.native_id);
        if (!owner.ok()) return owner.status();
        if (owner->has_value() && (*owner)->canonical_id != item.canonical_id) {
          batch.CompleteOutbox(item.id, item.payload_hash);
          ++counts.updated;
          continue;
        }
      }
      link.entity = item.entity;
      link.canonical_id = item.canonical_id;
      link.system = item.system;
      if (!outcomes[i].native_id.empty()) link.native_id = outcomes[i].native_id;
      if (item.op == OutboxOp::kUpsert && !link.native_id.empty()) {
        // A create queued before its record was deleted (on_delete: propagate) or merged away,
        // delivered since: the delete could not name this copy, unmade then (or made by an
        // attempt whose answer was lost). It is deleted too, unless a merge moved it to another
        // record.
        const auto& closed = snapshot();
        if (!closed.ok()) return closed.status();
        if (closed->has_value() && (**closed).deleted_ms > 0) {
          batch.CompleteOutbox(item.id, item.payload_hash);
          ++counts.updated;
          auto owner = e_->store_->FindLinkByNative(item.system, item.entity, link.native_id);
          if (!owner.ok()) return owner.status();
          if (owner->has_value() && (*owner)->canonical_id != item.canonical_id) continue;
          spdlog::info("{}: {} {} was written for {} {}, deleted or merged since; it is deleted",
                       m.system, m.object, link.native_id, item.entity, item.canonical_id);
          link.updated_ms = now;
          batch.PutLink(link);
          batch.Enqueue(WritePlanner::NewOutboxItem(m, item.canonical_id, OutboxOp::kDelete,
                                                    link.native_id, json::object(), now));
          continue;
        }
      }
      link.last_written_hash = item.payload_hash;
      // A copy crmbridge deleted is known deleted, as one whose delete was read: read live
      // again with a later change, it was restored there (ReadProcessor::Restore); its
      // tombstone read later is not a delete of its own.
      if (item.op == OutboxOp::kDelete) link.last_read_hash = kDeletedReadHash;
      link.updated_ms = now;
      batch.PutLink(link);
      batch.CompleteOutbox(item.id, item.payload_hash);
      // Record what the target now holds, as crmbridge will read it back (through the mapping's
      // In direction, so a many-to-one table's preferred value is what is expected): reading it
      // back later is then recognised as our own write, not a change made there.
      auto back = AsReadBack(m, item.payload);
      if (!back.ok()) return back.status();
      auto& snap = snapshot();  // for the read-back and the lag
      if (snap.ok() && snap->has_value()) {
        // The write carries the record's latest change: its lag runs from that change.
        int64_t changed = 0;
        for (const auto& [field, ms] : (**snap).changed_ms.items())
          if (ms.is_number_integer()) changed = std::max(changed, ms.get<int64_t>());
        if (changed > 0) counts.change_lag.Observe(static_cast<double>(now - changed) / 1000);
      }
      if (!back->is_null()) {
        if (!snap.ok()) return snap.status();
        if (snap->has_value()) {
          Snapshot updated = std::move(**snap);  // not looked at again
          NoteDelivered(&updated, item.system, *back, outcomes[i].unverified);
          batch.PutSnapshot(std::move(updated));
        }
      }
      if (outcomes[i].unverified) ++counts.unverified;
      if (outcomes[i].created) {
        ++counts.created;
      } else {
        ++counts.updated;
      }
      tally_.Written(PlannedWrite{item.system, item.entity, item.canonical_id,
                                  outcomes[i].created ? WriteAction::kCreated : WriteAction::kUpdated,
                                  link.native_id,
                                  item.payload});
      continue;
    }
    if (decision == WriteDecision::kStopSystem) {
      // Not this record's fault: leave it queued untouched and stop writing to this system.
      MarkUnreachable(m.system, st);
      spdlog::error("{}: writes stopped for this run: {}", m.system, st.ToString());
      break;
    }
    const int64_t next_attempt = now + OutboxBackoffMs(item.attempts, e_->config_->sync);
    switch (decision) {
      case WriteDecision::kWait:
        // The referenced record's own write is still queued (failed transiently): wait for it
        // without spending an attempt; its attempts decide.
        batch.RetryOutbox(item.id, error, next_attempt, false, item.payload_hash);
        break;
      case WriteDecision::kRetryLater:
        ++counts.retrying;
        batch.RetryOutbox(item.id, error, next_attempt, true, item.payload_hash);
        spdlog::warn("{}: {} {} will be retried: {}", m.system, m.entity, item.canonical_id, error);
        break;
      default:
        ++counts.dead_lettered;
        batch.DeadLetterOutbox(item.id, error, waits[i].waiting ? 0 : st.http_status(),
                               item.payload_hash);
        spdlog::error("{}: {} {} dead-lettered after {} attempt(s): {}", m.system, m.entity,
                      item.canonical_id, item.attempts + 1, error);
        break;
    }
  }
  return e_->store_->Apply(batch);
}

}  // namespace crmbridge
