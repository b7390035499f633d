#include "src/engine/sync_engine.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "src/core/hash.h"
#include "src/core/ids.h"
#include "src/core/time_util.h"
#include "src/engine/merge.h"
#include "src/engine/portal_rules.h"

namespace crmbridge {

using nlohmann::json;

json EntityCounts::ToJson() const {
  return json{{"read", read},         {"unchanged", unchanged},   {"changed", changed},
              {"rejected", rejected}, {"deletes_seen", deletes_seen}, {"queued", queued},
              {"created", created},   {"updated", updated},       {"retrying", retrying},
              {"dead_lettered", dead_lettered}, {"unverified", unverified},
              {"verified", verified}, {"rewritten", rewritten}, {"conflicts", conflicts},
              {"duplicates", duplicates}, {"unresolved_refs", unresolved_refs},
              {"waiting_on_refs", waiting_on_refs}};
}

int64_t RunSummary::TotalWrites() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.created + c.updated;
  return n;
}

int64_t RunSummary::TotalDeadLettered() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.dead_lettered;
  return n;
}

int64_t RunSummary::TotalQueued() const {
  int64_t n = 0;
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) n += c.queued;
  return n;
}

json RunSummary::ToJson() const {
  json j{{"run_id", run_id},
         {"dry_run", dry_run},
         {"started_ms", started_ms},
         {"finished_ms", finished_ms},
         {"duration_ms", finished_ms - started_ms},
         {"writes", TotalWrites()},
         {"dead_lettered", TotalDeadLettered()},
         {"systems", json::object()},
         {"unreachable", unreachable}};
  if (lease_denied) {
    j["lease_denied"] = true;
    j["lease_holder"] = lease_holder;
  }
  for (const auto& [system, entities] : counts)
    for (const auto& [entity, c] : entities) j["systems"][system][entity] = c.ToJson();
  auto list = [](const std::vector<PlannedWrite>& writes) {
    json p = json::array();
    for (const auto& w : writes)
      p.push_back({{"system", w.system}, {"entity", w.entity}, {"canonical_id", w.canonical_id},
                   {"action", w.action}, {"native_id", w.native_id}, {"fields", w.fields}});
    return p;
  };
  if (dry_run) {
    j["plan"] = list(plan);
  } else {
    j["written"] = list(written);
  }
  return j;
}

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

// True when every field crmbridge would write to `target` is one it reads there, and what it last
// read (or wrote) there equals the canonical value: the record came from that system, or was
// written by crmbridge, and nothing it maps has changed since. A change to fields it does not
// map (another system's own fields) then costs no write.
bool HoldsAlready(const SystemEntityMapping& target, const Snapshot& snap) {
  if (!snap.seen.is_object() || !snap.seen.contains(target.system)) return false;
  const json& seen = snap.seen[target.system];
  for (const FieldMap& f : target.fields) {
    if (!f.writes() || f.create_only) continue;
    if (!f.reads()) return false;  // never read back: only the written hash can tell
    const auto value = snap.fields.find(f.canonical);
    if (value == snap.fields.end()) continue;  // not written
    const auto held = seen.find(f.canonical);
    if (held == seen.end() || *held != *value) return false;
  }
  return true;
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

// A network-level failure (no HTTP answer) or a credentials problem means the system, not the
// record, is at fault.
bool IsUnreachable(const Status& s) {
  return s.IsSystemFatal() || (s.code() == StatusCode::kUnavailable && s.http_status() == 0);
}

}  // namespace

// State of one RunOnce call.
class SyncEngine::Run {
 public:
  Run(SyncEngine* engine, const RunOptions& options) : e_(engine), opt_(options) {}

  Result<RunSummary> Execute();

 private:
  bool Stopping() const { return opt_.stop != nullptr && opt_.stop->load(); }
  // Whether this run reads `m`: a backfill reads its system (and entity) alone.
  bool ReadsThisRun(const SystemEntityMapping& m) const {
    return m.reads() && (opt_.backfill_system.empty() ||
                         (m.system == opt_.backfill_system &&
                          (opt_.backfill_entity.empty() || m.entity == opt_.backfill_entity)));
  }
  // Extends the lease while a long run works. kAborted when another run took it over (ours had
  // expired): this run must stop rather than write beside it.
  Status RenewLease() {
    auto renewed = e_->store_->AcquireLease(opt_.holder, e_->clock_->NowMillis(),
                                            e_->config_->sync.lease_ttl.count());
    if (!renewed.ok()) return renewed.status();
    if (!*renewed)
      return Status(StatusCode::kAborted, "the run lease expired and another run took it over");
    return Status::Ok();
  }
  EntityCounts& Count(const std::string& system, const std::string& entity) {
    std::lock_guard<std::mutex> lock(summary_mu_);
    return summary_.counts[system][entity];
  }
  void MarkUnreachable(const std::string& system, const Status& s) {
    std::lock_guard<std::mutex> lock(summary_mu_);
    summary_.unreachable.emplace(system, s.ToString());
  }
  bool IsMarkedUnreachable(const std::string& system) {
    std::lock_guard<std::mutex> lock(summary_mu_);
    return summary_.unreachable.count(system) > 0;
  }

  // The link of (entity, canonical id, system) as this run sees it: this page's uncommitted one
  // first, else the stored one, else an empty Link.
  Result<Link> CurrentLink(const std::string& entity, const std::string& canonical_id,
                           const std::string& system) {
    auto pending = pending_links_by_cid_.find(entity + "|" + canonical_id + "|" + system);
    if (pending != pending_links_by_cid_.end()) return pending->second;
    if (page_loaded_ && entity == page_entity_) {
      auto loaded = page_state_.links.find(canonical_id);
      if (loaded != page_state_.links.end()) {
        for (const Link& link : loaded->second)
          if (link.system == system) return link;
        return Link{};
      }
    }
    auto stored = e_->store_->FindLink(entity, canonical_id, system);
    if (!stored.ok()) return stored.status();
    return stored->value_or(Link{});
  }

  // The canonical id linked to (system, entity, native id): this page's pending link, else the
  // page's preloaded one, else the store's; nullopt when crmbridge has not linked it.
  Result<std::optional<std::string>> LinkedCanonicalId(const std::string& system,
                                                       const std::string& entity,
                                                       const std::string& native_id);
  // Reference fields of a record mapped from `m` get canonical ids: a native id through the
  // referenced entity's links in m.system, a placeholder (an outbox payload read back) by its id.
  // A native id crmbridge has not linked is dropped from `record`, counted in `unresolved`.
  Status ResolveReadRefs(const SystemEntityMapping& m, MappedRecord* record, int64_t* unresolved);
  // Turns the placeholders of an outbox payload into NativeRefs of `m.system`'s records. kAborted
  // naming the record when one does not exist there yet (it is retried later).
  // `on_its_way`: the missing record has a write queued there, so waiting costs no attempt.
  // `state` is what LoadWriteRefs read for the chunk.
  struct WriteRefState {
    std::unordered_map<std::string, Snapshot> snapshots;  // the chunk's records, by canonical id
    // Per referenced entity, canonical id -> its native id in the chunk's system.
    std::map<std::string, std::unordered_map<std::string, std::string>> native_ids;
  };
  Status LoadWriteRefs(const SystemEntityMapping& m, const std::vector<OutboxItem>& items,
                       WriteRefState* state);
  Status ResolveWriteRefs(const SystemEntityMapping& m, const OutboxItem& item,
                          const WriteRefState& state, WriteOp* op, bool* on_its_way);
  Status ReadSystem(const SystemEntityMapping& m);
  Status ProcessRecord(const SystemEntityMapping& source, const NativeRecord& record,
                       StateBatch* batch);
  // The record's canonical id: by link, by the crmbridge key it carries, by match key (then
  // `matched`), else a new one. kAlreadyExists: a duplicate in its system (see the definition).
  // `minted`: a new one, which the store has nothing about yet.
  Result<std::string> ResolveCanonicalId(const SystemEntityMapping& source,
                                         const NativeRecord& record, const MappedRecord& mapped,
                                         bool* matched, bool* minted);
  // Loads what the store holds for a page's records in one call (Store::LoadRecords), for
  // ResolveCanonicalId, CurrentLink and ProcessRecord's snapshot; ClearPageState drops it.
  Status LoadPageState(const SystemEntityMapping& m, const std::vector<NativeRecord>& records);
  void ClearPageState();
  static std::string MatchKey(const std::vector<std::string>& fields, const nlohmann::json& values);
  void PutMatchKeys(const std::string& entity, const std::string& canonical_id,
                    const nlohmann::json& fields, StateBatch* batch);
  Status ProcessDelete(const SystemEntityMapping& source, const NativeRecord& record,
                       StateBatch* batch);
  // Checks unconfirmed writes to `source` against what it now shows (see the definition).
  // `missing`: a full scan did not return the record at all.
  Status VerifyWrites(const SystemEntityMapping& source, const NativeRecord& record,
                      const std::string& canonical_id, Snapshot* snap, MappedRecord* mapped,
                      bool* rewrite, StateBatch* batch, bool missing = false);
  // After a full scan: unconfirmed writes whose records the scan did not return.
  Status VerifyMissing(const SystemEntityMapping& m);
  // Queues the snapshot's values for `source` again: after a lost write (`lost`), or after a
  // change there lost to the conflict policy.
  Status EnqueueRewrite(const SystemEntityMapping& source, const NativeRecord& record,
                        const std::string& canonical_id, const Snapshot& snap, StateBatch* batch,
                        bool lost);
  // Queues a write for every other system whose copy differs from `snap`.
  Status PlanTargets(const SystemEntityMapping& source, const std::string& canonical_id,
                     Snapshot* snap, StateBatch* batch);
  // Queues a write of `snap` to one target when it differs from what the target holds.
  Status PlanTarget(const std::string& from_entity, const SystemEntityMapping& target,
                    const std::string& canonical_id, const Snapshot& snap, StateBatch* batch);
  // The portal access flow (MappingPlan::portal_access): after the reads, each contact's
  // conditions decide its portal user and grants; revokes, users and grants are queued.
  Status PlanPortalAccess();
  void ReflectPortalState(const std::string& contact_id, const nlohmann::json& values,
                          StateBatch* batch);
  // Audit entries (and link bookkeeping) for a delivered portal write.
  // True when it settled the item itself (a revoked grant: its link is cleared, not updated).
  bool RecordPortalOutcome(const OutboxItem& item, const WriteOutcome& outcome, StateBatch* batch);
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
  Status FlushChunk(Connector* connector, const SystemEntityMapping& m,
                    const std::vector<OutboxItem>& items);
  // Before `items[sent]` leave for m.system: their values are recorded as sent with an unknown
  // outcome (Snapshot::in_doubt) and committed, so that reading one back is known as crmbridge's
  // own write even if the answer is lost, or the process dies before it is committed.
  Status RecordSending(const SystemEntityMapping& m, const std::vector<OutboxItem>& items,
                       const std::vector<size_t>& sent);

  SyncEngine* e_;
  RunOptions opt_;
  int64_t run_start_ms_ = 0;
  std::mutex summary_mu_;
  RunSummary summary_;

  // Work of the page being processed, not yet committed: later records of the same page (or a
  // dry run's whole pass) must see it.
  std::unordered_map<std::string, Link> pending_links_;          // key: system|entity|native_id
  std::unordered_map<std::string, Link> pending_links_by_cid_;   // key: entity|cid|system
  std::unordered_map<std::string, Snapshot> pending_snapshots_;  // key: entity|cid
  std::unordered_map<std::string, std::string> pending_match_keys_;  // entity|key -> cid
  // What the store held for the current page's records when the page began (the pending_ maps
  // above take precedence): links by native id of page_system_'s page_entity_, and of each
  // canonical id in it (or minted in it) its snapshot and links in every system.
  bool page_loaded_ = false;
  std::string page_system_, page_entity_;
  // When the page being processed was asked for and when it arrived, and how precisely its
  // system dates modifications: what the merge dates changes and settles sent values by.
  struct PageTime {
    int64_t started_ms = 0;
    int64_t received_ms = 0;
    int64_t precision_ms = 1;
  } page_time_;
  std::unordered_set<std::string> page_natives_;
  RecordStates page_state_;
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
    // Writes queued by the committed pages, by "system|entity".
    std::unordered_map<std::string, int64_t> queued;
    std::set<std::string> read_done;  // "system|entity" read to the end

  } reading_;
  // Outbox items that waited for a referenced record this run without spending an attempt: once
  // per run, so a flush loop cannot spin on them.
  std::set<int64_t> waited_;
  // Records whose unconfirmed writes were checked this run (system|entity|cid).
  std::set<std::string> verified_;
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
  run_start_ms_ = e_->clock_->NowMillis();
  summary_.started_ms = run_start_ms_;
  summary_.dry_run = opt_.dry_run;

  // A dry run writes nothing, the lease included: it may run beside a real one.
  if (!opt_.dry_run) {
    auto got = store->AcquireLease(opt_.holder, run_start_ms_, e_->config_->sync.lease_ttl.count());
    if (!got.ok()) return got.status();
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
  const std::string portal_first =
      e_->plan_->portal_access() ? e_->plan_->portal_access()->system : std::string();
  // Writes may start while reading goes on (RunOptions::flush_while_reading). Not the portal's:
  // they follow from the reads as a whole (PlanPortalAccess).
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
      reading_.read_done.insert(m.system + "|" + m.entity);
    }
    if (!failure.ok()) break;
    ReadProgressed(/*entity_done=*/true);
  }
  ReadProgressed(false, /*done=*/true);
  if (Status s = early.Join(); !s.ok() && failure.ok()) failure = s;

  // Portal access follows from what the reads left in the snapshots.
  if (failure.ok() && !Stopping() && opt_.backfill_system.empty()) {
    Status s = PlanPortalAccess();
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
    Status fs = store->FinishRun(rec);
    if (!fs.ok()) spdlog::error("could not record the run: {}", fs.ToString());
    Status rs = store->ReleaseLease(opt_.holder);
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
  while (!Stopping()) {
    Result<Page> page = [&] {
      std::lock_guard<std::mutex> lock(connector_mu_.at(m.system));
      page_time_.started_ms = e_->clock_->NowMillis();
      Result<Page> read = connector->ReadChanges(ref, cursor, ctx);
      page_time_.received_ms = e_->clock_->NowMillis();
      page_time_.precision_ms = connector->capabilities().modified_precision_ms;
      return read;
    }();
    if (!page.ok()) {
      // Whatever the cause (network, credentials, a query the API refuses), the system sits out
      // the rest of this run and the run exits 4; its cursor is unchanged, so the next run reads
      // the same changes again.
      Status s = page.status();
      s.set_system(m.system);
      spdlog::error("{}: reading {} failed, skipping this system for the run: {}", m.system,
                    m.object, s.ToString());
      MarkUnreachable(m.system, s);
      return Status::Ok();
    }
    {
      // A flush running beside the reads may just have written some of these records: the
      // page's read-modify-write of their snapshots and links does not interleave with its own.
      std::lock_guard<std::mutex> state_lock(flush_state_mu_);
      StateBatch batch;
      CRMB_RETURN_IF_ERROR(LoadPageState(m, page->records));
      for (const NativeRecord& record : page->records) {
        CRMB_RETURN_IF_ERROR(ProcessRecord(m, record, &batch));
      }
      ClearPageState();
      if (!opt_.dry_run) {
        // The finished backfill's checkpoint is cleared: the next backfill starts over.
        batch.SetCursor(m.system, cursor_key, backfill && !page->has_more ? "" : page->next);
        CRMB_RETURN_IF_ERROR(store->Apply(batch));
        CRMB_RETURN_IF_ERROR(RenewLease());
        ReadProgressed(/*entity_done=*/false, false, &batch);
        pending_links_.clear();
        pending_links_by_cid_.clear();
        pending_match_keys_.clear();
        pending_snapshots_.clear();
      }
    }
    read_so_far += static_cast<int64_t>(page->records.size());
    if (opt_.progress) opt_.progress(read_so_far, page->total);
    cursor = page->next;
    if (!page->has_more) {
      // A full scan, start to end: an unconfirmed write whose record it never returned was lost.
      if (scan_from_start && cursor.empty()) {
        std::lock_guard<std::mutex> state_lock(flush_state_mu_);
        return VerifyMissing(m);
      }
      break;
    }
  }
  return Status::Ok();
}

Status SyncEngine::Run::LoadPageState(const SystemEntityMapping& m,
                                      const std::vector<NativeRecord>& records) {
  ClearPageState();
  std::vector<std::string> ids;
  ids.reserve(records.size());
  for (const NativeRecord& record : records) {
    if (record.deleted) continue;
    if (page_natives_.insert(record.id).second) ids.push_back(record.id);
  }
  auto loaded = e_->store_->LoadRecords(m.entity, m.system, ids, {});
  if (!loaded.ok()) {
    ClearPageState();
    return loaded.status();
  }
  page_state_ = std::move(*loaded);
  page_system_ = m.system;
  page_entity_ = m.entity;
  page_loaded_ = true;
  return Status::Ok();
}

void SyncEngine::Run::ClearPageState() {
  page_loaded_ = false;
  page_natives_.clear();
  page_state_ = RecordStates{};
}

Status SyncEngine::Run::VerifyMissing(const SystemEntityMapping& m) {
  auto pending = e_->store_->ListUnverified(m.system, m.entity);
  if (!pending.ok()) return pending.status();
  StateBatch batch;
  for (Snapshot& snap : *pending) {
    if (verified_.count(m.system + "|" + m.entity + "|" + snap.canonical_id)) continue;
    auto link = CurrentLink(m.entity, snap.canonical_id, m.system);
    if (!link.ok()) return link.status();
    NativeRecord absent;
    absent.id = link->native_id;
    MappedRecord nothing;
    bool rewrite = false;
    CRMB_RETURN_IF_ERROR(VerifyWrites(m, absent, snap.canonical_id, &snap, &nothing, &rewrite,
                                      &batch, /*missing=*/true));
    if (rewrite)
      CRMB_RETURN_IF_ERROR(EnqueueRewrite(m, absent, snap.canonical_id, snap, &batch, /*lost=*/true));
    if (!opt_.dry_run) batch.PutSnapshot(snap);
  }
  if (opt_.dry_run || batch.empty()) return Status::Ok();
  return e_->store_->Apply(batch);
}

Result<std::optional<std::string>> SyncEngine::Run::LinkedCanonicalId(const std::string& system,
                                                                      const std::string& entity,
                                                                      const std::string& native_id) {
  if (auto p = pending_links_.find(system + "|" + entity + "|" + native_id); p != pending_links_.end())
    return std::optional<std::string>(p->second.canonical_id);
  if (page_loaded_ && system == page_system_ && entity == page_entity_ &&
      page_natives_.count(native_id)) {
    auto loaded = page_state_.by_native.find(native_id);
    if (loaded == page_state_.by_native.end()) return std::optional<std::string>();
    return std::optional<std::string>(loaded->second.canonical_id);
  }
  auto link = e_->store_->FindLinkByNative(system, entity, native_id);
  if (!link.ok()) return link.status();
  if (!link->has_value()) return std::optional<std::string>();
  return std::optional<std::string>((*link)->canonical_id);
}

Result<std::string> SyncEngine::Run::ResolveCanonicalId(const SystemEntityMapping& source,
                                                        const NativeRecord& record,
                                                        const MappedRecord& mapped, bool* matched,
                                                        bool* minted) {
  auto linked_id = LinkedCanonicalId(source.system, source.entity, record.id);
  if (!linked_id.ok()) return linked_id.status();
  if (linked_id->has_value()) return **linked_id;
  // The record carries the key crmbridge wrote when it created it: a write whose link was lost
  // (crash between the API call and the commit) is recognised instead of duplicated.
  if (!record.key.empty()) return record.key;
  // First time this record is seen: its match key may name a canonical record it is (the same
  // email as a contact already synced from another system).
  if (!source.match.empty()) {
    const std::string mk = MatchKey(source.match, mapped.fields);
    if (!mk.empty()) {
      std::optional<std::string> found;
      if (auto p = pending_match_keys_.find(source.entity + "|" + mk); p != pending_match_keys_.end()) {
        found = p->second;
      } else {
        auto stored = e_->store_->FindByMatchKey(source.entity, mk);
        if (!stored.ok()) return stored.status();
        found = *stored;
      }
      if (found) {
        auto linked = CurrentLink(source.entity, *found, source.system);
        if (!linked.ok()) return linked.status();
        // One canonical record has one record per system: a second one with the same match key
        // is a duplicate in that system, reported and left alone rather than merged.
        if (!linked->native_id.empty() && linked->native_id != record.id)
          return Status(StatusCode::kAlreadyExists,
                        "has the same " + mk + " as " + source.object + " " + linked->native_id +
                            ", already linked to " + source.entity + " " + *found);
        *matched = true;
        return *found;
      }
    }
  }
  std::string cid = NewTimeOrderedUuid();
  *minted = true;
  // Nothing in the store refers to it: no snapshot, no link, no queued write.
  if (page_loaded_ && source.entity == page_entity_) page_state_.links[cid];
  return cid;
}

// "email=anna@acme.se": the match fields' values, trimmed and case-folded; "" when any is empty.
std::string SyncEngine::Run::MatchKey(const std::vector<std::string>& fields, const json& values) {
  std::string key;
  for (const std::string& f : fields) {
    if (!values.contains(f) || values[f].is_null()) return "";
    std::string v = values[f].is_string() ? values[f].get<std::string>() : values[f].dump();
    const size_t b = v.find_first_not_of(" \t\r\n"), e = v.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) return "";
    v = v.substr(b, e - b + 1);
    std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
    key += (key.empty() ? "" : "&") + f + "=" + v;
  }
  return key;
}

// Every match key the entity's mappings declare, for a canonical record's values.
void SyncEngine::Run::PutMatchKeys(const std::string& entity, const std::string& canonical_id,
                                   const json& fields, StateBatch* batch) {
  std::set<std::vector<std::string>> specs;
  for (const SystemEntityMapping& m : e_->plan_->mappings())
    if (m.entity == entity && !m.match.empty()) specs.insert(m.match);
  for (const auto& spec : specs) {
    const std::string mk = MatchKey(spec, fields);
    if (mk.empty()) continue;
    if (pending_match_keys_.emplace(entity + "|" + mk, canonical_id).second)
      batch->PutMatchKey(entity, mk, canonical_id);
  }
}

Status SyncEngine::Run::ResolveReadRefs(const SystemEntityMapping& m, MappedRecord* record,
                                        int64_t* unresolved) {
  for (const FieldMap& f : m.fields) {
    if (f.ref_entity.empty() || !record->fields.contains(f.canonical)) continue;
    json& value = record->fields[f.canonical];
    if (value.is_null()) continue;  // refers to nothing
    if (auto cid = RefPlaceholderId(value)) {
      value = *cid;
      continue;
    }
    const std::string native_id = value.get<std::string>();
    auto cid = LinkedCanonicalId(m.system, f.ref_entity, native_id);
    if (!cid.ok()) return cid.status();
    if (cid->has_value()) {
      value = **cid;
      continue;
    }
    if (unresolved != nullptr) ++*unresolved;
    spdlog::info("{}: {}.{} refers to {} {}, which crmbridge has not linked; the reference is "
                 "left as it is", m.system, m.entity, f.canonical, f.ref_entity, native_id);
    record->fields.erase(f.canonical);
  }
  return Status::Ok();
}

Status SyncEngine::Run::LoadWriteRefs(const SystemEntityMapping& m,
                                      const std::vector<OutboxItem>& items, WriteRefState* state) {
  std::vector<const FieldMap*> ref_fields;
  for (const FieldMap& f : m.fields)
    if (!f.ref_entity.empty() && f.writes()) ref_fields.push_back(&f);
  if (ref_fields.empty() || items.empty()) return Status::Ok();
  std::vector<std::string> ids;
  ids.reserve(items.size());
  for (const OutboxItem& item : items) ids.push_back(item.canonical_id);
  auto own = e_->store_->LoadRecords(m.entity, m.system, {}, ids);
  if (!own.ok()) return own.status();
  state->snapshots = std::move(own->snapshots);
  // Per referenced entity, the records referred to now and before, in one call.
  std::map<std::string, std::set<std::string>> wanted;
  for (const OutboxItem& item : items) {
    const auto snap = state->snapshots.find(item.canonical_id);
    const json* seen = snap != state->snapshots.end() && snap->second.seen.is_object() &&
                               snap->second.seen.contains(m.system)
                           ? &snap->second.seen[m.system]
                           : nullptr;
    for (const FieldMap* f : ref_fields) {
      if (auto it = item.payload.find(f->native); it != item.payload.end())
        if (auto cid = RefPlaceholderId(*it)) wanted[f->ref_entity].insert(*cid);
      if (seen != nullptr)
        if (auto before = seen->find(f->canonical); before != seen->end() && before->is_string())
          wanted[f->ref_entity].insert(before->get<std::string>());
    }
  }
  for (const auto& [entity, cids] : wanted) {
    auto loaded = e_->store_->LoadRecords(entity, m.system, {},
                                          std::vector<std::string>(cids.begin(), cids.end()));
    if (!loaded.ok()) return loaded.status();
    auto& native = state->native_ids[entity];
    for (const auto& [cid, links] : loaded->links)
      for (const Link& link : links)
        if (link.system == m.system && !link.native_id.empty()) native[cid] = link.native_id;
  }
  return Status::Ok();
}

Status SyncEngine::Run::ResolveWriteRefs(const SystemEntityMapping& m, const OutboxItem& item,
                                         const WriteRefState& state, WriteOp* op,
                                         bool* on_its_way) {
  auto native_id = [&](const std::string& entity, const std::string& cid) -> std::string {
    auto by_entity = state.native_ids.find(entity);
    if (by_entity == state.native_ids.end()) return "";
    auto it = by_entity->second.find(cid);
    return it == by_entity->second.end() ? "" : it->second;
  };
  const auto snap = state.snapshots.find(item.canonical_id);
  for (const FieldMap& f : m.fields) {
    if (f.ref_entity.empty() || !f.writes() || !op->fields.contains(f.native)) continue;
    const json value = op->fields[f.native];
    op->fields.erase(f.native);
    const SystemEntityMapping* target = e_->plan_->Find(m.system, f.ref_entity);
    if (target == nullptr) continue;  // validation requires it
    NativeRef ref;
    ref.object = target->object;
    ref.bind = f.bind;
    std::string cid;
    if (auto id = RefPlaceholderId(value)) cid = *id;
    if (!cid.empty()) {
      ref.id = native_id(f.ref_entity, cid);
      if (ref.id.empty()) {
        auto queued = e_->store_->PendingOutbox(m.system, f.ref_entity, cid);
        if (!queued.ok()) return queued.status();
        *on_its_way = queued->has_value();
        return Status(StatusCode::kAborted, "waits for " + f.ref_entity + " " + cid + " (its " +
                                                f.canonical + "), which " + m.system +
                                                " does not have yet");
      }
    }
    // What this system referred to before, so a many-valued reference can drop it.
    if (snap != state.snapshots.end() && snap->second.seen.is_object() &&
        snap->second.seen.contains(m.system)) {
      const json before = snap->second.seen[m.system].value(f.canonical, json());
      if (before.is_string() && before.get<std::string>() != cid)
        ref.previous_id = native_id(f.ref_entity, before.get<std::string>());
    }
    op->refs[f.native] = std::move(ref);
  }
  return Status::Ok();
}

Status SyncEngine::Run::ProcessRecord(const SystemEntityMapping& source, const NativeRecord& record,
                                      StateBatch* batch) {
  EntityCounts& counts = Count(source.system, source.entity);
  ++counts.read;
  if (record.deleted) return ProcessDelete(source, record, batch);
  auto mapped = MappingPlan::ToCanonical(source, record.fields);
  if (!mapped.ok()) {
    ++counts.rejected;
    spdlog::warn("{}: {} {} cannot be mapped to {}: {}", source.system, source.object, record.id,
                 source.entity, mapped.status().message());
    return Status::Ok();
  }
  CRMB_RETURN_IF_ERROR(ResolveReadRefs(source, &*mapped, &counts.unresolved_refs));

  bool matched = false, minted = false;
  auto cid_or = ResolveCanonicalId(source, record, *mapped, &matched, &minted);
  if (cid_or.status().code() == StatusCode::kAlreadyExists) {
    ++counts.duplicates;
    spdlog::warn("{}: {} {} is not synced: it {}", source.system, source.object, record.id,
                 cid_or.status().message());
    return Status::Ok();
  }
  if (!cid_or.ok()) return cid_or.status();
  const std::string cid = *cid_or;

  // Current snapshot: this page's pending one first, else the committed one.
  const std::string snap_key = source.entity + "|" + cid;
  Snapshot snap;
  bool known = false;
  if (auto p = pending_snapshots_.find(snap_key); p != pending_snapshots_.end()) {
    snap = p->second;
    known = true;
  } else if (minted) {
    // A new record: no snapshot yet.
  } else if (page_loaded_ && source.entity == page_entity_ && page_state_.links.count(cid)) {
    if (auto loaded = page_state_.snapshots.find(cid); loaded != page_state_.snapshots.end()) {
      snap = loaded->second;
      known = true;
    }
  } else {
    auto stored = e_->store_->GetSnapshot(source.entity, cid);
    if (!stored.ok()) return stored.status();
    if (stored->has_value()) {
      snap = **stored;
      known = true;
    }
  }
  if (!known) {
    snap.entity = source.entity;
    snap.canonical_id = cid;
  }

  // Unconfirmed writes to this system are verified against what it now shows.
  bool verification_changed = false, rewrite = false;
  if (snap.unverified.is_object() && snap.unverified.contains(source.system)) {
    CRMB_RETURN_IF_ERROR(VerifyWrites(source, record, cid, &snap, &*mapped, &rewrite, batch));
    verification_changed = true;
  }

  // The merge (engine/merge.h): echoes, conflicts and the stage move of this read.
  MergeInput in;
  in.snapshot = &snap;
  in.known = known;
  in.system = source.system;
  in.read = &mapped->fields;
  in.changed_at_ms = ChangeDate(
      ChangeTime{record.modified_ms, page_time_.precision_ms, page_time_.received_ms},
      run_start_ms_);
  in.read_started_ms = page_time_.started_ms;
  in.entity = e_->plan_->FindEntity(source.entity);
  in.queued_values = [&]() -> Result<json> {
    auto queued = e_->store_->PendingOutbox(source.system, source.entity, cid);
    if (!queued.ok()) return queued.status();
    if (!queued->has_value()) return json();
    auto back = MappingPlan::ToCanonical(source, (*queued)->payload);
    if (!back.ok()) return json();
    CRMB_RETURN_IF_ERROR(ResolveReadRefs(source, &*back, nullptr));
    return back->fields;
  };
  auto merge = MergeRead(in);
  if (!merge.ok()) return merge.status();
  for (const FieldConflict& c : merge->conflicts) {
    ++Count(source.system, source.entity).conflicts;
    spdlog::info("{}: {} {} changed {} to {}, which is not taken: {}", source.system,
                 source.object, record.id, c.field, c.value.dump(), c.lost_to);
  }
  for (const std::string& field : merge->echoes)
    spdlog::info("{}: {} {} shows the {} crmbridge sent earlier without learning the outcome: "
                 "its own write, not a change", source.system, source.object, record.id, field);
  const bool conflict_rewrite = !merge->conflicts.empty();
  const bool changed = merge->changed;
  const bool seen_changed = merge->seen_changed;
  const json merged = merge->snapshot.fields;
  const std::optional<StageMove> stage_move = merge->stage;
  merge->snapshot.fields = snap.fields;  // `snap` takes the merged fields once planned below
  snap = std::move(merge->snapshot);

  // Keep the source link current (it may be new, or its read hash may have moved).
  const std::string read_hash = HashJson(mapped->fields);
  auto found = CurrentLink(source.entity, cid, source.system);
  if (!found.ok()) return found.status();
  Link link = *found;
  const bool link_changed = link.native_id != record.id || link.last_read_hash != read_hash;
  if (link_changed) {
    link.entity = source.entity;
    link.canonical_id = cid;
    link.system = source.system;
    link.native_id = record.id;
    link.last_read_hash = read_hash;
    link.updated_ms = run_start_ms_;
    batch->PutLink(link);
    pending_links_[source.system + "|" + source.entity + "|" + record.id] = link;
    pending_links_by_cid_[source.entity + "|" + cid + "|" + source.system] = link;
  }

  if (rewrite || conflict_rewrite) {
    // The snapshot keeps the winning values: write them back to this system (its losing
    // change, or the write it lost). The merged values of this read go with them.
    Snapshot to_write = snap;
    to_write.fields = merged;
    CRMB_RETURN_IF_ERROR(EnqueueRewrite(source, record, cid, to_write, batch, /*lost=*/rewrite));
  }
  if (matched && !opt_.dry_run) {
    // Identified by its match key: a create queued for this system before it was found (the
    // canonical record came from another system first) becomes an update of this record.
    auto queued = e_->store_->PendingOutbox(source.system, source.entity, cid);
    if (!queued.ok()) return queued.status();
    if (queued->has_value()) {
      Snapshot to_write = snap;
      to_write.fields = merged;
      CRMB_RETURN_IF_ERROR(EnqueueRewrite(source, record, cid, to_write, batch, /*lost=*/false));
    }
  }
  if (!changed) {
    // Equal to what crmbridge already holds: unchanged, or our own write coming back.
    ++counts.unchanged;
    if (seen_changed || verification_changed) {
      snap.updated_ms = run_start_ms_;
      batch->PutSnapshot(snap);
      pending_snapshots_[snap_key] = snap;
    }
    return Status::Ok();
  }
  ++counts.changed;

  // Stage transitions feed days-in-stage reports.
  if (stage_move) {
    StageTransition t;
    t.entity = source.entity;
    t.canonical_id = cid;
    t.system = source.system;
    t.from_stage = stage_move->from;
    t.to_stage = stage_move->to;
    t.at_ms = record.modified_ms > 0 ? record.modified_ms : run_start_ms_;
    batch->AddStageTransition(t);
  }

  snap.fields = merged;
  snap.updated_ms = run_start_ms_;
  CRMB_RETURN_IF_ERROR(PlanTargets(source, cid, &snap, batch));
  // A write still queued for this very system was planned before this change was read: replace
  // it with the merged values, so it cannot undo the change it did not know about.
  // (A record seen for the first time has none.)
  if (!opt_.dry_run && !rewrite && !conflict_rewrite && !minted) {
    auto queued = e_->store_->PendingOutbox(source.system, source.entity, cid);
    if (!queued.ok()) return queued.status();
    if (queued->has_value())
      CRMB_RETURN_IF_ERROR(EnqueueRewrite(source, record, cid, snap, batch, /*lost=*/false));
  }
  batch->PutSnapshot(snap);
  pending_snapshots_[snap_key] = snap;
  PutMatchKeys(source.entity, cid, snap.fields, batch);
  return Status::Ok();
}

// A record deleted in `source` meets its entity's on_delete policy; never silently.
Status SyncEngine::Run::ProcessDelete(const SystemEntityMapping& source, const NativeRecord& record,
                                      StateBatch* batch) {
  EntityCounts& counts = Count(source.system, source.entity);
  ++counts.deletes_seen;
  auto link = e_->store_->FindLinkByNative(source.system, source.entity, record.id);
  if (!link.ok()) return link.status();
  if (!link->has_value()) return Status::Ok();  // never synced: nothing elsewhere to change
  const std::string cid = (*link)->canonical_id;
  auto stored = e_->store_->GetSnapshot(source.entity, cid);
  if (!stored.ok()) return stored.status();
  if (!stored->has_value()) return Status::Ok();
  Snapshot snap = **stored;
  if (auto p = pending_snapshots_.find(source.entity + "|" + cid); p != pending_snapshots_.end())
    snap = p->second;
  if (snap.deleted_ms > 0) return Status::Ok();  // a delete crmbridge carried out, coming back
  const CanonicalEntity* entity = e_->plan_->FindEntity(source.entity);
  const DeletePolicy policy = entity ? entity->on_delete : DeletePolicy{};
  switch (policy.kind) {
    case DeletePolicy::Kind::kIgnore:
      spdlog::info("{}: {} {} was deleted; {}'s on_delete is ignore, so the other systems keep "
                   "their records", source.system, source.object, record.id, source.entity);
      return Status::Ok();
    case DeletePolicy::Kind::kMark: {
      spdlog::info("{}: {} {} was deleted; marking {} {} with {} everywhere", source.system,
                   source.object, record.id, source.entity, cid, policy.set.dump());
      for (const auto& [field, value] : policy.set.items()) {
        snap.fields[field] = value;
        if (!snap.changed_ms.is_object()) snap.changed_ms = json::object();
        snap.changed_ms[field] = run_start_ms_;
      }
      snap.updated_ms = run_start_ms_;
      CRMB_RETURN_IF_ERROR(PlanTargets(source, cid, &snap, batch));
      break;
    }
    case DeletePolicy::Kind::kPropagate:
      spdlog::info("{}: {} {} was deleted; deleting {} {} in the other systems", source.system,
                   source.object, record.id, source.entity, cid);
      for (const SystemEntityMapping& target : e_->plan_->mappings()) {
        if (target.entity != source.entity || target.system == source.system || !target.writes())
          continue;
        auto found = CurrentLink(target.entity, cid, target.system);
        if (!found.ok()) return found.status();
        if (found->native_id.empty()) continue;  // never made there
        ++Count(target.system, target.entity).queued;
        if (opt_.dry_run) {
          summary_.plan.push_back(PlannedWrite{target.system, target.entity, cid, "delete",
                                               found->native_id, json::object()});
          continue;
        }
        OutboxItem item;
        item.system = target.system;
        item.object = target.object;
        item.entity = target.entity;
        item.canonical_id = cid;
        item.op = "delete";
        item.native_id = found->native_id;
        item.idempotency_key = cid;
        item.payload = json::object();
        item.payload_hash = "delete";
        item.created_ms = run_start_ms_;
        batch->Enqueue(item);
      }
      snap.deleted_ms = run_start_ms_;
      break;
  }
  batch->PutSnapshot(snap);
  pending_snapshots_[source.entity + "|" + cid] = snap;
  return Status::Ok();
}

// An unconfirmed write is verified field by field: read back as sent, it is done; still showing
// the value it replaced, it was lost, so the read is not a change there and the write is queued
// again (dead-lettered after sync.max_verify_attempts); showing a third value, someone changed it there
// since, and that change is merged as usual.
Status SyncEngine::Run::VerifyWrites(const SystemEntityMapping& source, const NativeRecord& record,
                                     const std::string& canonical_id, Snapshot* snap,
                                     MappedRecord* mapped, bool* rewrite, StateBatch* batch,
                                     bool missing) {
  const int kMaxVerifyAttempts = e_->config_->sync.max_verify_attempts;
  EntityCounts& counts = Count(source.system, source.entity);
  verified_.insert(source.system + "|" + source.entity + "|" + canonical_id);
  json& pending = snap->unverified[source.system];
  std::vector<std::string> done, lost;
  for (const auto& [field, entry] : pending.items()) {
    const json read = mapped->fields.contains(field) ? mapped->fields[field] : json();
    const json& sent = entry["sent"];
    if (missing) {
      // The record itself never showed up: nothing of the write landed.
      lost.push_back(field);
      if (entry.value("attempts", 1) >= kMaxVerifyAttempts) done.push_back(field);
    } else if (read == sent) {
      ++counts.verified;
      done.push_back(field);
    } else if (read == entry["before"]) {
      mapped->fields[field] = sent;  // not a change made there: our write did not land
      lost.push_back(field);
      if (entry.value("attempts", 1) >= kMaxVerifyAttempts) done.push_back(field);
    } else {
      done.push_back(field);  // changed there since: the merge takes it from here
    }
  }
  bool give_up = false;
  std::string reason;
  for (const std::string& field : lost) {
    const json& entry = pending[field];
    if (entry.value("attempts", 1) >= kMaxVerifyAttempts) {
      // Given up: the system is known to hold the old value, which is then not a change made
      // there on later reads either; the dead letter's replay sends the value again.
      give_up = true;
      snap->seen[source.system][field] = entry["before"];
      if (!missing) mapped->fields[field] = entry["before"];
      reason += (reason.empty() ? "" : "; ") + field + " written as " + entry["sent"].dump() + " " +
                std::to_string(entry.value("attempts", 1)) + " times, still " +
                entry["before"].dump();
    } else {
      *rewrite = true;
    }
  }
  for (const std::string& field : done) pending.erase(field);
  if (pending.empty()) snap->unverified.erase(source.system);
  if (give_up) {
    auto native = MappingPlan::ToNative(source, snap->fields, /*creating=*/false);
    OutboxItem item;
    item.system = source.system;
    item.object = source.object;
    item.entity = source.entity;
    item.canonical_id = canonical_id;
    item.op = "update";
    item.native_id = record.id;
    item.idempotency_key = canonical_id;
    item.payload = native.ok() ? *native : json::object();
    item.payload_hash = HashJson(item.payload);
    item.attempts = kMaxVerifyAttempts;
    item.created_ms = run_start_ms_;
    ++counts.dead_lettered;
    spdlog::error("{}: {} {} dead-lettered: {} accepted the write but did not apply it: {}",
                  source.system, source.entity, canonical_id, source.system, reason);
    if (!opt_.dry_run)
      batch->AddDeadLetter(item, source.system + " acknowledged the write but did not apply it: " +
                                     reason);
  }
  return Status::Ok();
}

// Queues the snapshot's values for the system again, after a read-back showed them lost.
Status SyncEngine::Run::EnqueueRewrite(const SystemEntityMapping& source, const NativeRecord& record,
                                       const std::string& canonical_id, const Snapshot& snap,
                                       StateBatch* batch, bool lost) {
  // A record never seen there (a lost create) is upserted by key again, with its create fields.
  const bool create = record.id.empty();
  auto native = MappingPlan::ToNative(source, snap.fields, /*creating=*/create);
  if (!native.ok()) return Status::Ok();  // reported when the write was first planned
  if (lost) {
    ++Count(source.system, source.entity).rewritten;
    spdlog::warn("{}: {} {} did not keep crmbridge's last write; writing it again", source.system,
                 source.object, create ? canonical_id + " (never appeared)" : record.id);
  }
  if (opt_.dry_run) return Status::Ok();
  OutboxItem item;
  item.system = source.system;
  item.object = source.object;
  item.entity = source.entity;
  item.canonical_id = canonical_id;
  item.op = create ? "upsert" : "update";
  item.native_id = record.id;
  item.idempotency_key = canonical_id;
  item.payload = *native;
  item.payload_hash = HashJson(*native);
  item.created_ms = run_start_ms_;
  batch->Enqueue(item);
  return Status::Ok();
}

Status SyncEngine::Run::PlanTargets(const SystemEntityMapping& source,
                                    const std::string& canonical_id, Snapshot* snap,
                                    StateBatch* batch) {
  for (const SystemEntityMapping& target : e_->plan_->mappings()) {
    if (target.entity != source.entity || target.system == source.system || !target.writes())
      continue;
    CRMB_RETURN_IF_ERROR(PlanTarget(source.entity, target, canonical_id, *snap, batch));
  }
  return Status::Ok();
}

Status SyncEngine::Run::PlanTarget(const std::string& from_entity, const SystemEntityMapping& target,
                                   const std::string& canonical_id, const Snapshot& snapshot,
                                   StateBatch* batch) {
  const Snapshot* snap = &snapshot;
  const json& merged = snap->fields;
  {
    auto found = CurrentLink(target.entity, canonical_id, target.system);
    if (!found.ok()) return found.status();
    const Link link = *found;
    const bool linked = !link.native_id.empty();
    auto native = MappingPlan::ToNative(target, merged, /*creating=*/!linked);
    if (!native.ok()) {
      ++Count(target.system, target.entity).rejected;
      spdlog::warn("{} {} cannot be mapped to {} {}: {}", from_entity, canonical_id,
                   target.system, target.object, native.status().message());
      return Status::Ok();
    }
    const std::string hash = HashJson(*native);
    if (linked && link.last_written_hash == hash) return Status::Ok();  // it has it already
    if (linked && HoldsAlready(target, *snap)) return Status::Ok();  // read with these values

    ++Count(target.system, target.entity).queued;
    if (opt_.dry_run) {
      summary_.plan.push_back(PlannedWrite{target.system, target.entity, canonical_id,
                                           linked ? "update" : "create", link.native_id,
                                           *native});
      return Status::Ok();
    }
    OutboxItem item;
    item.system = target.system;
    item.object = target.object;
    item.entity = target.entity;
    item.canonical_id = canonical_id;
    // A record the target already has (it came from there, or crmbridge created it) is updated
    // by its id: records that originated in the target do not carry crmbridge's key, so an upsert
    // by key would create a second one. New records are upserted by key, so a create retried
    // after an unknown outcome finds the first one instead of duplicating it.
    item.op = linked ? "update" : "upsert";
    item.native_id = link.native_id;
    item.idempotency_key = canonical_id;
    item.payload = *native;
    item.payload_hash = hash;
    item.created_ms = run_start_ms_;
    batch->Enqueue(item);
  }
  return Status::Ok();
}

Status SyncEngine::Run::PlanPortalAccess() {
  const std::optional<PortalAccessFlow>& flow = e_->plan_->portal_access();
  if (!flow || !e_->connectors_.count(flow->system)) return Status::Ok();
  const SystemEntityMapping* users = e_->plan_->Find(flow->system, kPortalUserEntity);
  const SystemEntityMapping* grants = e_->plan_->Find(flow->system, kPortalAccessEntity);
  const CanonicalEntity* contact_entity = e_->plan_->FindEntity(flow->contact);
  if (users == nullptr || grants == nullptr || contact_entity == nullptr) return Status::Ok();
  const CanonicalField* company_ref = contact_entity->Find(flow->company);
  const std::string company_entity = company_ref ? company_ref->ref_entity : "";
  Store* store = e_->store_;
  // Every contact, a page at a time: memory holds one page, whatever the number of contacts.
  constexpr int kContactsPerPage = 1000;
  auto text = [](const json& fields, const std::string& name) {
    auto it = fields.find(name);
    return it != fields.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  int64_t revokes = 0, grants_planned = 0;
  std::string after;
  while (true) {
    auto contacts = store->ListSnapshotsAfter(flow->contact, after, kContactsPerPage);
    if (!contacts.ok()) return contacts.status();
    if (contacts->empty()) break;
    after = contacts->back().canonical_id;
    // The page's portal users (what was last planned for each contact), in one call.
    std::vector<std::string> page_ids;
    page_ids.reserve(contacts->size());
    for (const Snapshot& c : *contacts) page_ids.push_back(c.canonical_id);
    auto planned = store->LoadRecords(kPortalUserEntity, flow->system, {}, page_ids);
    if (!planned.ok()) return planned.status();
    // And their companies.
    std::set<std::string> company_ids;
    for (const Snapshot& c : *contacts)
      if (std::string id = text(c.fields, flow->company); !id.empty()) company_ids.insert(id);
    auto companies = store->LoadRecords(
        company_entity, flow->system, {},
        std::vector<std::string>(company_ids.begin(), company_ids.end()));
    if (!companies.ok()) return companies.status();
    StateBatch batch;
    for (const Snapshot& c : *contacts) {
      const std::string company = text(c.fields, flow->company);
      json company_fields;  // null: no company, or one crmbridge does not hold (or deleted)
      if (auto it = companies->snapshots.find(company);
          !company.empty() && it != companies->snapshots.end() && it->second.deleted_ms == 0)
        company_fields = it->second.fields;
      const PortalDecision decision =
          DecidePortalAccess(*flow, c.fields, c.deleted_ms > 0, company_fields);
      const bool eligible = decision.eligible;
      const std::string& reason = decision.reason;
      const std::string& email = decision.email;

      // What crmbridge last planned for this contact: its portal user's snapshot lists the
      // properties it was granted.
      const auto stored = planned->snapshots.find(c.canonical_id);
      const bool had_user = stored != planned->snapshots.end();
      if (!eligible && !had_user) continue;  // never had access: nothing to do
      Snapshot user = had_user ? stored->second : Snapshot{};
      user.entity = kPortalUserEntity;
      user.canonical_id = c.canonical_id;
      std::set<std::string> held;
      if (user.fields.contains("properties") && user.fields["properties"].is_array())
        for (const json& p : user.fields["properties"])
          if (p.is_string()) held.insert(p.get<std::string>());
      std::set<std::string> wanted;
      if (eligible) wanted.insert(decision.grants.begin(), decision.grants.end());

      json fields = user.fields;
      if (eligible) {
        fields["email"] = email;
        fields["first_name"] = flow->first_name.empty() ? "" : text(c.fields, flow->first_name);
        fields["last_name"] = flow->last_name.empty() ? "" : text(c.fields, flow->last_name);
      }
      fields["portal_access"] = eligible;
      fields["properties"] = json(std::vector<std::string>(wanted.begin(), wanted.end()));
      if (fields == user.fields) continue;  // already as planned
      user.fields = fields;
      user.updated_ms = run_start_ms_;

      // Revokes first: a grant that no condition holds any more, or of a property moved away from.
      for (const std::string& p : held) {
        if (wanted.count(p)) continue;
        const std::string gid = c.canonical_id + ":" + p;
        auto link = CurrentLink(kPortalAccessEntity, gid, flow->system);
        if (!link.ok()) return link.status();
        ++revokes;
        spdlog::info("{}: revoking {}'s access to property {}: {}", flow->system, c.canonical_id, p,
                     reason.empty() ? "the main property changed" : reason);
        if (opt_.dry_run) {
          summary_.plan.push_back(PlannedWrite{flow->system, kPortalAccessEntity, gid, "delete",
                                               link->native_id, json{{"property", p}}});
          continue;
        }
        OutboxItem item;
        item.system = flow->system;
        item.object = grants->object;
        item.entity = kPortalAccessEntity;
        item.canonical_id = gid;
        item.op = "delete";
        item.native_id = link->native_id;
        item.idempotency_key = gid;
        // Without a grant id (its grant never landed), the delete names the user and property.
        item.payload = {{"user_id", RefPlaceholder(kPortalUserEntity, c.canonical_id)},
                        {"property_external_id", p},
                        {"reason", reason.empty() ? "the main property changed" : reason}};
        item.payload_hash = "delete";
        item.created_ms = run_start_ms_;
        batch.Enqueue(item);
        ++Count(flow->system, kPortalAccessEntity).queued;
      }
      // The user (created or updated; on a revoke, its portal_access turns false), then the grant.
      if (eligible || had_user)
        CRMB_RETURN_IF_ERROR(PlanTarget(flow->contact, *users, c.canonical_id, user, &batch));
      for (const std::string& p : wanted) {
        const std::string gid = c.canonical_id + ":" + p;
        Snapshot grant;
        grant.entity = kPortalAccessEntity;
        grant.canonical_id = gid;
        grant.fields = {{"user", c.canonical_id}, {"property", p}};
        grant.updated_ms = run_start_ms_;
        ++grants_planned;
        CRMB_RETURN_IF_ERROR(PlanTarget(flow->contact, *grants, gid, grant, &batch));
        if (!opt_.dry_run) batch.PutSnapshot(grant);
      }
      if (!opt_.dry_run) batch.PutSnapshot(user);
    }
    if (!opt_.dry_run && !batch.empty()) CRMB_RETURN_IF_ERROR(store->Apply(batch));
    if (static_cast<int>(contacts->size()) < kContactsPerPage) break;
  }
  if (revokes + grants_planned > 0)
    spdlog::info("{}: portal access: {} grant(s) and {} revoke(s) planned", flow->system,
                 grants_planned, revokes);
  return Status::Ok();
}

// The portal's answer, reflected on the contact (PortalAccessFlow::user_id_field, state_field)
// and queued for every system that maps those fields.
void SyncEngine::Run::ReflectPortalState(const std::string& contact_id, const json& values,
                                         StateBatch* batch) {
  const PortalAccessFlow& flow = *e_->plan_->portal_access();
  json wanted = json::object();
  if (!flow.user_id_field.empty() && values.contains("user_id"))
    wanted[flow.user_id_field] = values["user_id"];
  if (!flow.state_field.empty() && values.contains("state")) wanted[flow.state_field] = values["state"];
  if (wanted.empty()) return;
  auto stored = e_->store_->GetSnapshot(flow.contact, contact_id);
  if (!stored.ok() || !stored->has_value()) return;
  Snapshot contact = **stored;
  bool changed = false;
  for (const auto& [field, value] : wanted.items())
    if (contact.fields.value(field, json()) != value) {
      contact.fields[field] = value;
      if (!contact.changed_ms.is_object()) contact.changed_ms = json::object();
      contact.changed_ms[field] = e_->clock_->NowMillis();
      changed = true;
    }
  if (!changed) return;
  contact.updated_ms = e_->clock_->NowMillis();
  for (const SystemEntityMapping& target : e_->plan_->mappings()) {
    if (target.entity != flow.contact || !target.writes()) continue;
    Status s = PlanTarget(flow.contact, target, contact_id, contact, batch);
    if (!s.ok()) spdlog::warn("{}: the portal state of {} is not written back: {}", target.system,
                              contact_id, s.ToString());
  }
  batch->PutSnapshot(contact);
}

bool SyncEngine::Run::RecordPortalOutcome(const OutboxItem& item, const WriteOutcome& outcome,
                                          StateBatch* batch) {
  const std::optional<PortalAccessFlow>& flow = e_->plan_->portal_access();
  if (!flow || item.system != flow->system) return false;
  AuditEntry entry;
  entry.at_ms = e_->clock_->NowMillis();
  entry.system = item.system;
  if (item.entity == kPortalUserEntity) {
    entry.subject = item.canonical_id;
    entry.action = "user";
    entry.detail = {{"user", outcome.native_id}, {"created", outcome.created},
                    {"email", item.payload.value("email", json())},
                    {"portal_access", item.payload.value("portal_access", json())}};
    batch->AddAudit(entry);
    ReflectPortalState(item.canonical_id, {{"user_id", outcome.native_id}}, batch);
    return false;
  }
  if (item.entity != kPortalAccessEntity) return false;
  const size_t colon = item.canonical_id.rfind(':');
  entry.subject = item.canonical_id.substr(0, colon);
  const std::string property = colon == std::string::npos ? "" : item.canonical_id.substr(colon + 1);
  entry.detail = {{"grant", outcome.native_id.empty() ? item.native_id : outcome.native_id},
                  {"property", property}};
  if (item.op == "delete") {
    entry.action = "revoke";
    entry.detail["reason"] = item.payload.value("reason", json());
    batch->AddAudit(entry);
    // Gone: a later grant of the same property is a new one (and gets its own reset).
    Link cleared;
    cleared.entity = item.entity;
    cleared.canonical_id = item.canonical_id;
    cleared.system = item.system;
    cleared.updated_ms = entry.at_ms;
    batch->PutLink(cleared);
    batch->CompleteOutbox(item.id, item.payload_hash);
    ReflectPortalState(entry.subject, {{"state", "revoked"}}, batch);
    ++Count(item.system, item.entity).updated;
    return true;
  }
  entry.action = "grant";
  entry.detail["created"] = outcome.created;
  batch->AddAudit(entry);
  ReflectPortalState(entry.subject, {{"state", "granted"}}, batch);
  if (outcome.created) {  // a new grant: the connector sent its one password reset
    entry.action = "reset";
    batch->AddAudit(entry);
  }
  return false;
}

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
        CRMB_RETURN_IF_ERROR(RenewLease());
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
    if (full_chunks_only) {
      if (left != nullptr) *left = n % max_batch;
      n -= n % max_batch;
    }
    if (n == 0) break;
    for (size_t i = 0; i < n && !Stopping(); i += max_batch) {
      std::vector<OutboxItem> chunk(due->begin() + i, due->begin() + std::min(n, i + max_batch));
      // Checked before writing: a run whose lease another run took over writes nothing more.
      CRMB_RETURN_IF_ERROR(RenewLease());
      CRMB_RETURN_IF_ERROR(FlushChunk(connector, m, chunk));
      if (IsMarkedUnreachable(m.system)) return Status::Ok();
    }
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
          ++reading_.queued[op.outbox.system + "|" + op.outbox.entity];
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
        const std::string key = system + "|" + entities[e].name;
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
  std::unordered_map<std::string, json> values;  // canonical id -> the canonical values sent
  for (size_t i : sent) {
    const OutboxItem& item = items[i];
    if (item.op == "delete" || item.entity != m.entity || item.system != m.system) continue;
    auto back = MappingPlan::ToCanonical(m, item.payload);
    if (!back.ok()) continue;
    CRMB_RETURN_IF_ERROR(ResolveReadRefs(m, &*back, nullptr));
    values[item.canonical_id] = std::move(back->fields);
  }
  if (values.empty()) return Status::Ok();
  std::vector<std::string> ids;
  ids.reserve(values.size());
  for (const auto& [cid, v] : values) ids.push_back(cid);
  std::lock_guard<std::mutex> state_lock(flush_state_mu_);
  auto loaded = e_->store_->LoadRecords(m.entity, m.system, {}, ids);
  if (!loaded.ok()) return loaded.status();
  const int64_t now = e_->clock_->NowMillis();
  StateBatch batch;
  for (auto& [cid, snap] : loaded->snapshots) {
    AddInDoubt(&snap, m.system, values[cid], now);
    batch.PutSnapshot(snap);
  }
  return batch.empty() ? Status::Ok() : e_->store_->Apply(batch);
}

Status SyncEngine::Run::FlushChunk(Connector* connector, const SystemEntityMapping& m,
                                   const std::vector<OutboxItem>& items) {
  std::vector<WriteOp> ops;
  ops.reserve(items.size());
  for (const OutboxItem& item : items) {
    WriteOp op;
    op.kind = item.op == "delete"   ? WriteOp::Kind::kDelete
              : item.op == "update" ? WriteOp::Kind::kUpdate
                                    : WriteOp::Kind::kUpsert;
    op.key = item.idempotency_key;
    op.native_id = item.native_id;
    op.fields = item.payload;
    op.attempt = item.attempts;
    ops.push_back(std::move(op));
  }
  // References become the target system's ids; a write whose referenced record is not there yet
  // waits (a record is flushed after the records it refers to, so that is a failure upstream).
  std::vector<Status> held(items.size());
  std::vector<char> on_its_way(items.size(), 0), skipped(items.size(), 0);
  std::vector<WriteOp> sendable;
  std::vector<size_t> sent_index;
  WriteRefState refs;  // read once for the chunk
  CRMB_RETURN_IF_ERROR(LoadWriteRefs(m, items, &refs));
  for (size_t i = 0; i < items.size(); ++i) {
    bool coming = false;
    held[i] = ResolveWriteRefs(m, items[i], refs, &ops[i], &coming);
    on_its_way[i] = coming;
    if (!held[i].ok() && held[i].code() != StatusCode::kAborted) return held[i];
    if (!held[i].ok() && items[i].op == "delete" && items[i].native_id.empty()) {
      // A delete that names a record by its reference, which never came to exist there: there
      // is nothing to delete.
      held[i] = Status::Ok();
      skipped[i] = 1;
      continue;
    }
    if (held[i].ok()) {
      sendable.push_back(std::move(ops[i]));
      sent_index.push_back(i);
    }
  }
  std::vector<WriteOutcome> outcomes(items.size());
  for (size_t i = 0; i < items.size(); ++i)
    if (!held[i].ok()) outcomes[i].status = held[i];
  if (!sendable.empty()) {
    CRMB_RETURN_IF_ERROR(RecordSending(m, items, sent_index));
    auto written = [&] {
      std::lock_guard<std::mutex> lock(connector_mu_.at(m.system));
      return connector->Write(RefFor(m), sendable);
    }();
    if (written.ok() && written->size() != sendable.size()) {
      return Status(StatusCode::kInternal,
                    std::string(connector->Name()) + " returned " + std::to_string(written->size()) +
                        " outcomes for " + std::to_string(sendable.size()) + " writes");
    }
    for (size_t k = 0; k < sent_index.size(); ++k)
      outcomes[sent_index[k]] = written.ok() ? std::move((*written)[k])
                                             : WriteOutcome{written.status(), "", false};
  }

  // Systems flush in parallel, and two of them may have written the same record: the snapshot's
  // read-modify-write below (each adds what its system now holds) must not interleave, or one
  // system's update of Snapshot::seen is lost and its next read looks like a change.
  std::lock_guard<std::mutex> state_lock(flush_state_mu_);
  // The links and snapshots of the delivered records, read in one call.
  std::vector<std::string> delivered;
  delivered.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i)
    if (outcomes[i].status.ok() && !skipped[i] && items[i].entity == m.entity &&
        items[i].system == m.system)
      delivered.push_back(items[i].canonical_id);
  auto loaded = e_->store_->LoadRecords(m.entity, m.system, {}, delivered);
  if (!loaded.ok()) return loaded.status();
  auto find_link = [&](const OutboxItem& item) -> Result<std::optional<Link>> {
    if (item.entity == m.entity && item.system == m.system) {
      if (auto it = loaded->links.find(item.canonical_id); it != loaded->links.end()) {
        for (const Link& link : it->second)
          if (link.system == item.system) return std::optional<Link>(link);
        return std::optional<Link>();
      }
    }
    return e_->store_->FindLink(item.entity, item.canonical_id, item.system);
  };
  auto find_snapshot = [&](const OutboxItem& item) -> Result<std::optional<Snapshot>> {
    if (item.entity == m.entity && item.system == m.system &&
        loaded->links.count(item.canonical_id)) {
      auto it = loaded->snapshots.find(item.canonical_id);
      if (it == loaded->snapshots.end()) return std::optional<Snapshot>();
      return std::optional<Snapshot>(it->second);
    }
    return e_->store_->GetSnapshot(item.entity, item.canonical_id);
  };
  StateBatch batch;
  EntityCounts& counts = Count(m.system, m.entity);
  const int64_t now = e_->clock_->NowMillis();
  for (size_t i = 0; i < items.size(); ++i) {
    const OutboxItem& item = items[i];
    Status st = outcomes[i].status;
    if (st.ok() && skipped[i]) {
      batch.CompleteOutbox(item.id, item.payload_hash);
      continue;
    }
    if (st.ok()) {
      if (RecordPortalOutcome(item, outcomes[i], &batch)) continue;
      auto existing = find_link(item);
      if (!existing.ok()) return existing.status();
      Link link = existing->value_or(Link{});
      link.entity = item.entity;
      link.canonical_id = item.canonical_id;
      link.system = item.system;
      if (!outcomes[i].native_id.empty()) link.native_id = outcomes[i].native_id;
      link.last_written_hash = item.payload_hash;
      link.updated_ms = now;
      batch.PutLink(link);
      batch.CompleteOutbox(item.id, item.payload_hash);
      // Record what the target now holds, as crmbridge will read it back (through the mapping's
      // In direction, so a many-to-one table's preferred value is what is expected): reading it
      // back later is then recognised as our own write, not a change made there.
      if (auto back = MappingPlan::ToCanonical(m, item.payload); back.ok()) {
        CRMB_RETURN_IF_ERROR(ResolveReadRefs(m, &*back, nullptr));
        auto snap = find_snapshot(item);
        if (!snap.ok()) return snap.status();
        if (snap->has_value()) {
          Snapshot updated = **snap;
          json& seen = updated.seen[item.system];
          if (!seen.is_object()) seen = json::object();
          SettleInDoubt(&updated, item.system, back->fields);  // it holds them now
          for (const auto& [field, value] : back->fields.items()) {
            if (!updated.unverified.is_object()) updated.unverified = json::object();
            const bool again = updated.unverified.contains(item.system) &&
                               updated.unverified[item.system].contains(field);
            if (outcomes[i].unverified && (again || seen.value(field, json()) != value)) {
              // Keep the value it replaced (from the first attempt) to recognise a lost write.
              json& entry = updated.unverified[item.system][field];
              entry = json{{"sent", value},
                           {"before", again ? entry["before"] : seen.value(field, json())},
                           {"attempts", again ? entry.value("attempts", 1) + 1 : 1}};
            }
            seen[field] = value;
          }
          batch.PutSnapshot(updated);
        }
      }
      if (outcomes[i].unverified) ++counts.unverified;
      if (outcomes[i].created) {
        ++counts.created;
      } else {
        ++counts.updated;
      }
      {
        std::lock_guard<std::mutex> lock(summary_mu_);
        if (summary_.written.size() < RunSummary::kMaxWrittenListed)
          summary_.written.push_back(PlannedWrite{item.system, item.entity, item.canonical_id,
                                                  outcomes[i].created ? "created" : "updated",
                                                  link.native_id, item.payload});
      }
      continue;
    }
    if (st.system().empty()) st.set_system(m.system);
    if (IsUnreachable(st)) {
      // Not this record's fault: leave it queued untouched and stop writing to this system.
      MarkUnreachable(m.system, st);
      spdlog::error("{}: writes stopped for this run: {}", m.system, st.ToString());
      break;
    }
    const bool transient = st.IsTransient() || st.code() == StatusCode::kAlreadyExists ||
                           st.code() == StatusCode::kAborted;
    if (!held[i].ok()) {
      ++counts.waiting_on_refs;
      bool first_wait = false;
      {
        std::lock_guard<std::mutex> lock(summary_mu_);
        first_wait = waited_.insert(item.id).second;
      }
      if (on_its_way[i] && first_wait) {
        // The referenced record's own write is still queued (failed transiently): wait for it
        // without spending an attempt; its attempts decide.
        batch.RetryOutbox(item.id, st.ToString(),
                          now + OutboxBackoffMs(item.attempts, e_->config_->sync), false,
                          item.payload_hash);
        continue;
      }
    }
    if (transient && item.attempts + 1 < e_->config_->sync.max_outbox_attempts) {
      ++counts.retrying;
      batch.RetryOutbox(item.id, st.ToString(), now + OutboxBackoffMs(item.attempts, e_->config_->sync),
                        true, item.payload_hash);
      spdlog::warn("{}: {} {} will be retried: {}", m.system, m.entity, item.canonical_id,
                   st.ToString());
    } else {
      ++counts.dead_lettered;
      batch.DeadLetterOutbox(item.id, st.ToString(), st.http_status(), item.payload_hash);
      spdlog::error("{}: {} {} dead-lettered after {} attempt(s): {}", m.system, m.entity,
                    item.canonical_id, item.attempts + 1, st.ToString());
    }
  }
  return e_->store_->Apply(batch);
}

}  // namespace crmbridge
