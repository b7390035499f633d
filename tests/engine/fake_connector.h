// FakeConnector: an in-memory system for engine tests. Records live in a map; ReadChanges pages
// through every record modified at or after the cursor's sequence number; Write upserts by key
// like an external-id property, so a repeated write never duplicates. Faults are scripted.
#pragma once

#include <algorithm>
#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "connectors/connector.h"

namespace crmbridge::testing {

class FakeSystem {
 public:
  struct Row {
    std::string id;
    std::string key;  // crmbridge key (external-id property)
    nlohmann::json fields;
    int64_t seq = 0;
    int64_t modified_ms = 0;  // as the system reports it; 0 = unknown
    bool deleted = false;     // a tombstone, as a change feed reports deletes
  };

  // Inserts or changes a record as a user of the system would; returns its id.
  std::string Put(const std::string& id, nlohmann::json fields, int64_t modified_ms = 0) {
    Row& r = rows_[id];
    r.id = id;
    r.modified_ms = modified_ms;
    for (auto& [k, v] : fields.items()) r.fields[k] = v;
    r.seq = ++seq_;
    return id;
  }
  // Deletes a record as a user of the system would: reads report it as a tombstone.
  void Delete(const std::string& id) {
    Row& r = rows_.at(id);
    r.deleted = true;
    r.seq = ++seq_;
  }
  // Restores a deleted record as a user of the system would (from a recycle bin): same id.
  void Restore(const std::string& id) {
    Row& r = rows_.at(id);
    r.deleted = false;
    r.seq = ++seq_;
  }
  // Live (not deleted) records.
  size_t live() const {
    size_t n = 0;
    for (const auto& [id, r] : rows_) n += !r.deleted;
    return n;
  }
  const std::map<std::string, Row>& rows() const { return rows_; }
  // The live record with crmbridge key `key`, as an upsert by an external-id property finds it
  // (a deleted record holds its key no more).
  Row* FindByKey(const std::string& key) {
    for (auto& [id, r] : rows_)
      if (r.key == key && !r.deleted) return &r;
    return nullptr;
  }

  std::map<std::string, Row> rows_;
  int64_t seq_ = 0;
  int next_id_ = 1000;
  std::string prefix_ = "n";
};

class FakeConnector : public Connector {
 public:
  FakeConnector(std::string name, FakeSystem* system, int max_batch = 2, int page = 2)
      : name_(std::move(name)), system_(system) {
    caps_.max_batch = max_batch;
    caps_.max_page = page;
  }

  std::string_view Name() const override { return name_; }
  const Capabilities& capabilities() const override { return caps_; }
  Capabilities& mutable_capabilities() { return caps_; }

  Result<Page> ReadChanges(const ObjectRef&, const Cursor& cursor, const ReadContext&) override {
    ++read_calls;
    if (on_read) on_read();
    if (!read_fault.ok()) return read_fault;
    if (full_scan) return ReadAll(cursor);
    // Cursor: "<seq>" = next sequence number to read.
    int64_t from = cursor.empty() ? 0 : std::stoll(cursor);
    std::vector<const FakeSystem::Row*> rows;
    for (const auto& [id, r] : system_->rows())
      if (r.seq >= from) rows.push_back(&r);
    std::sort(rows.begin(), rows.end(), [](auto* a, auto* b) { return a->seq < b->seq; });
    Page page;
    int64_t next = from;
    for (size_t i = 0; i < rows.size() && static_cast<int>(i) < caps_.max_page; ++i) {
      NativeRecord rec;
      rec.id = rows[i]->id;
      rec.fields = rows[i]->fields;
      rec.key = rows[i]->key;
      rec.modified_ms = rows[i]->modified_ms;
      rec.deleted = rows[i]->deleted;
      page.records.push_back(rec);
      next = rows[i]->seq + 1;
    }
    page.has_more = static_cast<int>(rows.size()) > caps_.max_page;
    // Overlap on purpose, as real connectors do: the final cursor restarts at the last page's
    // first record, so a second run sees records again and must recognise them as unchanged.
    page.next = std::to_string(page.has_more ? next : from);
    return page;
  }

  Result<std::vector<WriteOutcome>> Write(const ObjectRef&,
                                          const std::vector<WriteOp>& ops) override {
    if (on_write) on_write(ops);
    ++write_calls;
    write_ops += static_cast<int>(ops.size());
    if (throw_on_write) {
      // The whole call lands, then its answer cannot be decoded (a connector's own defect).
      throw_on_write = false;
      (void)Write(ObjectRef{}, ops);
      --write_calls;
      throw std::runtime_error("[json.exception.type_error.302] type must be string");
    }
    if (!write_call_fault.ok()) return write_call_fault;
    if (!applied_then_fault.ok()) {
      // The whole call lands, then the connection drops: the caller learns nothing.
      Status fault = applied_then_fault;
      applied_then_fault = Status();
      (void)Write(ObjectRef{}, ops);
      --write_calls;
      return fault;
    }
    std::vector<WriteOutcome> out;
    for (const WriteOp& op : ops) {
      WriteOutcome o;
      o.unverified = unconfirmed;
      auto lose = lose_writes.find(op.key);
      if ((lose != lose_writes.end() && lose->second > 0) || lose_next > 0) {
        // Acknowledged, never applied: what an unconfirmed write can silently do.
        if (lose_next > 0) --lose_next;
        else --lose->second;
        o.native_id = op.native_id;
        out.push_back(o);
        continue;
      }
      auto fault = op_faults.find(op.key);
      if (fault != op_faults.end() && !fault->second.empty()) {
        o.status = fault->second.front();
        fault->second.pop_front();
        // "applied, then timed out": the write lands but the caller learns nothing.
        if (o.status.code() != StatusCode::kDeadlineExceeded) {
          out.push_back(o);
          continue;
        }
      }
      FakeSystem::Row* row = nullptr;
      if (op.kind == WriteOp::Kind::kDelete) {
        // Deleting what is gone already succeeds, as the real APIs' deletes do.
        auto it = system_->rows_.find(op.native_id);
        if (it != system_->rows_.end() && !it->second.deleted) system_->Delete(op.native_id);
        o.native_id = op.native_id;
        out.push_back(o);
        continue;
      }
      if (op.kind == WriteOp::Kind::kUpdate) {
        auto it = system_->rows_.find(op.native_id);
        if (it == system_->rows_.end() || it->second.deleted) {
          o.status = StatusFromHttp(404, "no record " + op.native_id);
          out.push_back(o);
          continue;
        }
        row = &it->second;
      } else {
        row = system_->FindByKey(op.key);
      }
      if (row == nullptr) {
        std::string id = system_->prefix_ + std::to_string(system_->next_id_++);
        FakeSystem::Row& r = system_->rows_[id];
        r.id = id;
        r.key = op.key;
        row = &r;
        if (o.status.ok()) o.created = true;
      }
      for (auto& [k, v] : op.fields.items()) row->fields[k] = v;
      row->seq = ++system_->seq_;
      if (o.status.ok()) o.native_id = row->id;
      out.push_back(o);
    }
    return out;
  }

  // A system with no change feed: every read scans all records (the cursor is an offset, and the
  // last page ends the scan), and the engine finds changes by diffing.
  Result<Page> ReadAll(const Cursor& cursor) {
    const size_t from = cursor.empty() ? 0 : std::stoul(cursor);
    Page page;
    size_t i = 0;
    for (const auto& [id, r] : system_->rows()) {
      if (i++ < from) continue;
      if (static_cast<int>(page.records.size()) == caps_.max_page) {
        page.has_more = true;
        break;
      }
      NativeRecord rec;
      rec.id = r.id;
      rec.fields = r.fields;
      rec.key = r.key;
      rec.modified_ms = r.modified_ms;
      rec.deleted = r.deleted;
      page.records.push_back(rec);
    }
    page.next = page.has_more ? std::to_string(from + page.records.size()) : "";
    return page;
  }

  bool full_scan = false;
  // Writes are acknowledged without confirmation (WriteOutcome::unverified).
  bool unconfirmed = false;
  // Per key, how many writes to acknowledge and then silently drop.
  std::map<std::string, int> lose_writes;
  int lose_next = 0;  // the next writes of any key, likewise
  int read_calls = 0;
  std::function<void()> on_read;  // runs at the start of every ReadChanges
  // Runs at the start of every Write call, as the request would leave.
  std::function<void(const std::vector<WriteOp>&)> on_write;
  // Atomic: a test may watch it from the reading thread while a flush writes beside the reads.
  std::atomic<int> write_calls{0};
  int write_ops = 0;
  Status read_fault;
  Status write_call_fault;
  // Applied to the next Write call only: its ops land, then the call reports this status.
  Status applied_then_fault;
  // The next Write call's ops land, then it throws.
  bool throw_on_write = false;
  // Per key, statuses returned by successive writes of that key.
  std::map<std::string, std::deque<Status>> op_faults;

 private:
  std::string name_;
  FakeSystem* system_;
  Capabilities caps_;
};

}  // namespace crmbridge::testing
