// MockStore: a GMock Store, for the engine's parts that read and write state through the Store
// interface, tested without SQLite.
#pragma once

#include <gmock/gmock.h>

#include "state/store.h"

namespace crmbridge::testing {

class MockStore : public Store {
 public:
  using S = const std::string&;
  MOCK_METHOD(Status, Apply, (const StateBatch&), (override));
  MOCK_METHOD(Result<std::optional<Link>>, FindLinkByNative, (S, S, S), (override));
  MOCK_METHOD(Result<std::optional<Link>>, FindLink, (S, S, S), (override));
  MOCK_METHOD(Result<std::optional<Snapshot>>, GetSnapshot, (S, S), (override));
  MOCK_METHOD(Result<RecordStates>, LoadRecords,
              (S, S, const std::vector<std::string>&, const std::vector<std::string>&), (override));
  MOCK_METHOD(Result<std::optional<std::string>>, GetCursor, (S, S), (override));
  MOCK_METHOD(Result<std::vector<CursorRow>>, ListCursors, (), (override));
  MOCK_METHOD(Result<std::optional<std::string>>, FindByMatchKey, (S, S), (override));
  MOCK_METHOD(Result<std::optional<OutboxItem>>, PendingOutbox, (S, S, S), (override));
  MOCK_METHOD(Result<std::vector<OutboxItem>>, DueOutbox, (const OutboxFilter&), (override));
  MOCK_METHOD(Result<std::vector<AuditEntry>>, ListAudit, (int64_t, int), (override));
  MOCK_METHOD(Result<nlohmann::json>, OutboxCounts, (), (override));
  MOCK_METHOD(Result<nlohmann::json>, DeadLetterCounts, (), (override));
  MOCK_METHOD(Result<std::vector<DeadLetter>>, ListDeadLetters, (int), (override));
  MOCK_METHOD(Result<std::vector<Snapshot>>, ListUnverified, (S, S), (override));
  MOCK_METHOD(Status, ReplayDeadLetter, (int64_t, int64_t), (override));
  MOCK_METHOD(Result<std::vector<StageTransition>>, StageHistory, (S, S), (override));
  MOCK_METHOD(Result<std::vector<StageTransition>>, AllStageHistory, (S), (override));
  MOCK_METHOD(Result<std::vector<Snapshot>>, ListSnapshots, (S), (override));
  MOCK_METHOD(Result<std::vector<Snapshot>>, ListSnapshotsAfter, (S, S, int), (override));
  MOCK_METHOD(Result<int64_t>, BeginRun, (S, int64_t), (override));
  MOCK_METHOD(Status, FinishRun, (const RunRecord&), (override));
  MOCK_METHOD(Result<std::vector<RunRecord>>, RecentRuns, (int), (override));
  MOCK_METHOD(Result<int>, AddWebhookEvents, (const std::vector<WebhookEvent>&), (override));
  MOCK_METHOD(Result<std::vector<WebhookEvent>>, PendingWebhookEvents, (int), (override));
  MOCK_METHOD(Status, FinishWebhookEvents, (int64_t, int64_t, int64_t), (override));
  MOCK_METHOD(Result<bool>, AcquireLease, (S, int64_t, int64_t), (override));
  MOCK_METHOD(Status, ReleaseLease, (S), (override));
  MOCK_METHOD(Result<std::optional<LeaseInfo>>, GetLease, (), (override));
  MOCK_METHOD(Result<int>, SchemaVersion, (), (override));
};

}  // namespace crmbridge::testing
