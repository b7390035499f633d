#include "src/report/onboarding_report.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>

#include <fmt/format.h>

#include "src/core/time_util.h"

namespace crmbridge::report {

using nlohmann::json;

int64_t OnboardingTimeline::started_ms() const {
  return intervals.empty() ? 0 : intervals.front().entered_ms;
}

int64_t WholeDays(int64_t ms) { return ms <= 0 ? 0 : ms / kDayMs; }

Status StagesFromPlan(const MappingPlan& plan, ReportOptions* options) {
  const CanonicalEntity* entity = plan.FindEntity(options->entity);
  if (entity == nullptr)
    return Status(StatusCode::kNotFound, "the mapping declares no entity '" + options->entity + "'");
  const CanonicalField* field = entity->Find(options->stage_field);
  if (field == nullptr)
    return Status(StatusCode::kNotFound, "entity '" + options->entity + "' has no field '" +
                                             options->stage_field + "'");
  options->stages = field->values;
  options->end_stages = std::set<std::string>(field->end_values.begin(), field->end_values.end());
  // Labels: each declared stage written out through a system's transforms (a value table), as
  // that system would store it. The system of record first; else the first that reads the field.
  std::vector<const SystemEntityMapping*> candidates;
  for (const SystemEntityMapping& m : plan.mappings())
    if (m.entity == options->entity) candidates.push_back(&m);
  std::stable_partition(candidates.begin(), candidates.end(), [&](const SystemEntityMapping* m) {
    return m->system == field->system_of_record;
  });
  for (const SystemEntityMapping* m : candidates) {
    const FieldMap* map = nullptr;
    for (const FieldMap& f : m->fields)
      if (f.canonical == options->stage_field && f.reads() && !f.transforms.empty()) map = &f;
    if (map == nullptr) continue;
    std::map<std::string, std::string> labels;
    for (const std::string& stage : field->values) {
      json value = stage;
      for (auto t = map->transforms.rbegin(); t != map->transforms.rend() && value.is_string(); ++t) {
        auto out = (*t)->Out(value);
        value = out.ok() ? *out : json();
      }
      // A label is text a person reads: a choice column's number (Dynamics 365) is not one.
      if (value.is_string() && !value.get<std::string>().empty()) labels[stage] = value.get<std::string>();
    }
    if (labels.empty()) continue;
    options->stage_labels = std::move(labels);
    options->label_system = m->system;
    break;
  }
  return Status::Ok();
}

namespace {

// The time from `from` to `to`, 0 when `to` is not later. Times come from the systems' records
// unbounded, so the difference is held to what an int64_t can count rather than overflowing.
int64_t Elapsed(int64_t from, int64_t to) {
  if (to <= from) return 0;
  int64_t d = 0;
  return __builtin_sub_overflow(to, from, &d) ? INT64_MAX : d;
}

int64_t AddCapped(int64_t a, int64_t b) {
  int64_t sum = 0;
  return __builtin_add_overflow(a, b, &sum) ? (b < 0 ? INT64_MIN : INT64_MAX) : sum;
}

int64_t JsonMillis(const json& j, const std::string& key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer()) return 0;
  return j[key].get<int64_t>();
}

// nullopt for an onboarding that did not exist yet at the report's "now" (--as-of): every stage it
// is known to have had came later.
std::optional<OnboardingTimeline> BuildOne(const std::string& id, const Snapshot* snap,
                                           const std::vector<const StageTransition*>& history,
                                           const ReportOptions& o) {
  OnboardingTimeline t;
  t.canonical_id = id;
  t.title = id;
  if (snap != nullptr && snap->fields.contains("title") && snap->fields["title"].is_string() &&
      !snap->fields["title"].get<std::string>().empty())
    t.title = snap->fields["title"].get<std::string>();
  auto is_end = [&](const std::string& stage) { return o.end_stages.count(stage) > 0; };

  bool later = false;  // a stage known only after the report's "now"
  for (const StageTransition* tr : history) {
    if (tr->at_ms > o.now_ms) {  // after the report's "now": not yet happened
      later = true;
      break;
    }
    if (t.intervals.empty() && !tr->from_stage.empty()) {
      // The history starts with a move out of a stage entered before it was recorded.
      t.intervals.push_back(StageInterval{tr->from_stage, 0, 0, "", is_end(tr->from_stage)});
    }
    // Several systems may report the same move; the first one made it.
    if (!t.intervals.empty() && t.intervals.back().stage == tr->to_stage) continue;
    if (!t.intervals.empty()) t.intervals.back().left_ms = tr->at_ms;
    t.intervals.push_back(StageInterval{tr->to_stage, tr->at_ms, 0, tr->system, is_end(tr->to_stage),
                                        tr->imported});
  }
  // The snapshot holds the stage as crmbridge last merged it; a change recorded without a
  // transition (an on_delete mark, say) still counts from when the field changed.
  if (snap != nullptr && snap->fields.contains(o.stage_field) && snap->fields[o.stage_field].is_string()) {
    const std::string stage = snap->fields[o.stage_field].get<std::string>();
    int64_t at = JsonMillis(snap->changed_ms, o.stage_field);
    if (at == 0) at = snap->updated_ms;
    // Only when it had changed by the report's "now"; with no time at all, only when the history
    // knows nothing better.
    const bool known_by_now = at > 0 ? at <= o.now_ms : t.intervals.empty();
    later = later || !known_by_now;
    if ((t.intervals.empty() || t.intervals.back().stage != stage) && known_by_now) {
      if (!t.intervals.empty()) {
        at = std::max(at, t.intervals.back().entered_ms);
        t.intervals.back().left_ms = at;
      }
      t.intervals.push_back(StageInterval{stage, at, 0, "", is_end(stage)});
    }
  }
  if (t.intervals.empty()) {
    if (later) return std::nullopt;
    return t;
  }

  const StageInterval& current = t.intervals.back();
  t.stage = current.stage;
  t.ended = current.end;
  // The clock stops at an end stage; leaving it opens a new interval, so it restarts from zero.
  if (!t.ended && current.entered_ms > 0) t.in_stage_ms = Elapsed(current.entered_ms, o.now_ms);
  for (const StageInterval& i : t.intervals) {
    if (i.end || i.entered_ms == 0) continue;
    const int64_t until = i.left_ms > 0 ? i.left_ms : o.now_ms;
    t.open_ms = AddCapped(t.open_ms, Elapsed(i.entered_ms, until));
  }
  t.stuck = !t.ended && t.in_stage_ms >= o.stuck_after_ms;
  t.overdue = !t.ended && t.open_ms >= o.escalate_after_ms;
  return t;
}

}  // namespace

OnboardingReport BuildOnboardingReport(const std::vector<Snapshot>& snapshots,
                                       const std::vector<StageTransition>& transitions,
                                       const ReportOptions& options) {
  OnboardingReport r;
  r.options = options;
  std::map<std::string, const Snapshot*> snaps;
  for (const Snapshot& s : snapshots)
    if (s.entity == options.entity) snaps[s.canonical_id] = &s;
  std::map<std::string, std::vector<const StageTransition*>> history;
  for (const StageTransition& t : transitions)
    if (t.entity == options.entity) history[t.canonical_id].push_back(&t);
  for (auto& [id, h] : history)  // stable: equal times keep the order they were recorded in
    std::stable_sort(h.begin(), h.end(), [](const StageTransition* a, const StageTransition* b) {
      return a->at_ms < b->at_ms;
    });

  std::set<std::string> ids;
  for (const auto& [id, s] : snaps) ids.insert(id);
  for (const auto& [id, h] : history) ids.insert(id);

  std::vector<OnboardingTimeline> all;
  static const std::vector<const StageTransition*> kNone;
  for (const std::string& id : ids) {
    auto s = snaps.find(id);
    const Snapshot* snap = s == snaps.end() ? nullptr : s->second;
    if (snap != nullptr && snap->deleted_ms > 0) continue;
    auto h = history.find(id);
    auto one = BuildOne(id, snap, h == history.end() ? kNone : h->second, options);
    if (one) all.push_back(std::move(*one));
  }

  // The funnel: declared stages in process order, then any others the data holds.
  std::vector<std::string> order = options.stages;
  std::set<std::string> extra;
  for (const OnboardingTimeline& t : all)
    if (std::find(order.begin(), order.end(), t.stage) == order.end()) extra.insert(t.stage);
  order.insert(order.end(), extra.begin(), extra.end());  // "" (no stage known) sorts first of them
  for (const std::string& stage : order) {
    FunnelRow row;
    row.stage = stage;
    row.end = options.end_stages.count(stage) > 0;
    for (const OnboardingTimeline& t : all) {
      if (t.stage != stage) continue;
      ++row.count;
      if (t.stuck) ++row.stuck;
    }
    r.funnel.push_back(row);
  }

  r.total = static_cast<int>(all.size());
  for (const OnboardingTimeline& t : all) {
    if (!t.ended) ++r.open;
    if (t.stuck) ++r.stuck;
    if (t.overdue) ++r.overdue;
    if (!t.ended || options.include_ended) r.onboardings.push_back(t);
  }
  std::stable_sort(r.onboardings.begin(), r.onboardings.end(),
                   [](const OnboardingTimeline& a, const OnboardingTimeline& b) {
                     if (a.ended != b.ended) return !a.ended;
                     if (a.in_stage_ms != b.in_stage_ms) return a.in_stage_ms > b.in_stage_ms;
                     if (a.title != b.title) return a.title < b.title;
                     return a.canonical_id < b.canonical_id;
                   });
  return r;
}

Result<OnboardingReport> LoadOnboardingReport(Store& store, const ReportOptions& options) {
  auto snapshots = store.ListSnapshots(options.entity);
  if (!snapshots.ok()) return snapshots.status();
  auto transitions = store.AllStageHistory(options.entity);
  if (!transitions.ok()) return transitions.status();
  return BuildOnboardingReport(*snapshots, *transitions, options);
}

// ---- rendering ----

namespace {

std::string Date(int64_t ms) { return ms <= 0 ? "?" : FormatIsoUtc(ms, false).substr(0, 10); }
std::string Time(int64_t ms) { return FormatIsoUtc(ms, false); }
std::string StageName(const std::string& stage) { return stage.empty() ? "(no stage)" : stage; }
// The stage as the team names it in its system of record, else its canonical name.
std::string StageLabel(const ReportOptions& o, const std::string& stage) {
  auto it = o.stage_labels.find(stage);
  return it == o.stage_labels.end() ? StageName(stage) : it->second;
}
// "Onboarding – Pågår (onboarding)": the label and, when they differ, the canonical name.
std::string StageBoth(const ReportOptions& o, const std::string& stage) {
  const std::string label = StageLabel(o, stage);
  return label == StageName(stage) ? label : label + " (" + StageName(stage) + ")";
}

// Code points, not bytes: titles are "Söderberg & Co".
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// At most `width` code points, an ellipsis marking the cut.
std::string Clip(const std::string& s, size_t width) {
  if (Width(s) <= width) return s;
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80 && ++n > width - 1) break;
    out += s[i];
  }
  return out + "…";
}

std::string Pad(const std::string& s, size_t width) {
  const std::string clipped = Clip(s, width);
  return clipped + std::string(width - std::min(width, Width(clipped)), ' ');
}

std::string Flags(const OnboardingTimeline& t, const ReportOptions& o) {
  std::string f;
  if (t.stuck) f += fmt::format("stuck {}d+", WholeDays(o.stuck_after_ms));
  if (t.overdue) f += std::string(f.empty() ? "" : ", ") + fmt::format("open {}d+", WholeDays(o.escalate_after_ms));
  if (t.ended) f = "ended";
  return f;
}

std::string EndStagesText(const ReportOptions& o) {
  if (o.end_stages.empty()) return "none declared";
  std::string s;
  for (const std::string& e : o.end_stages) s += (s.empty() ? "" : ", ") + StageLabel(o, e);
  return s;
}

}  // namespace

std::string EscapeHtml(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string RenderText(const OnboardingReport& r) {
  const ReportOptions& o = r.options;
  std::string out = fmt::format(
      "Onboardings as of {}: {} open, {} stuck {}+ days in their stage, {} open {}+ days "
      "({} in all; end stage: {})\n",
      Time(o.now_ms), r.open, r.stuck, WholeDays(o.stuck_after_ms), r.overdue,
      WholeDays(o.escalate_after_ms), r.total, EndStagesText(o));
  if (!o.label_system.empty())
    out += "Stages as " + o.label_system + " names them (--json gives the canonical names too).\n";
  out += "\nFunnel:\n";
  for (const FunnelRow& f : r.funnel) {
    out += fmt::format("  {} {:>4}", Pad(StageLabel(o, f.stage), 22), f.count);
    if (f.stuck > 0) out += fmt::format("  ({} stuck)", f.stuck);
    if (f.end) out += "  (end stage)";
    out += "\n";
  }
  out += "\n";
  if (r.onboardings.empty()) {
    out += "No open onboardings.\n";
    return out;
  }
  out += fmt::format("{} {} {:>13} {:>9}  {} {}  {}\n", Pad("CUSTOMER", 32), Pad("STAGE", 22),
                     "DAYS IN STAGE", "DAYS OPEN", Pad("MOVED BY", 12), Pad("SINCE", 10), "FLAGS");
  for (const OnboardingTimeline& t : r.onboardings) {
    const StageInterval* cur = t.intervals.empty() ? nullptr : &t.intervals.back();
    const std::string days = t.ended ? "stopped" : std::to_string(WholeDays(t.in_stage_ms));
    std::string line = fmt::format("{} {} {:>13} {:>9}  {} {}  {}", Pad(t.title, 32),
                                   Pad(StageLabel(o, t.stage), 22), days, WholeDays(t.open_ms),
                                   Pad(cur && !cur->moved_by.empty() ? cur->moved_by : "-", 12),
                                   Pad(cur ? Date(cur->entered_ms) : "-", 10), Flags(t, o));
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

json RenderJson(const OnboardingReport& r) {
  const ReportOptions& o = r.options;
  json j;
  j["entity"] = o.entity;
  j["as_of"] = Time(o.now_ms);
  j["stuck_after_days"] = WholeDays(o.stuck_after_ms);
  j["escalate_after_days"] = WholeDays(o.escalate_after_ms);
  j["end_stages"] = json(std::vector<std::string>(o.end_stages.begin(), o.end_stages.end()));
  j["stage_labels"] = {{"system", o.label_system.empty() ? json() : json(o.label_system)},
                       {"labels", json(o.stage_labels)}};
  j["summary"] = {{"total", r.total}, {"open", r.open}, {"stuck", r.stuck}, {"overdue", r.overdue}};
  j["funnel"] = json::array();
  for (const FunnelRow& f : r.funnel)
    j["funnel"].push_back({{"stage", f.stage},
                           {"stage_label", StageLabel(o, f.stage)},
                           {"count", f.count},
                           {"stuck", f.stuck},
                           {"end", f.end}});
  j["onboardings"] = json::array();
  for (const OnboardingTimeline& t : r.onboardings) {
    json history = json::array();
    for (const StageInterval& i : t.intervals) {
      const int64_t until = i.left_ms > 0 ? i.left_ms : o.now_ms;
      history.push_back(
          {{"stage", i.stage},
           {"stage_label", StageLabel(o, i.stage)},
           {"entered", i.entered_ms > 0 ? json(Time(i.entered_ms)) : json()},
           {"left", i.left_ms > 0 ? json(Time(i.left_ms)) : json()},
           {"days", i.entered_ms > 0 ? json(WholeDays(Elapsed(i.entered_ms, until))) : json()},
           {"moved_by", i.moved_by.empty() ? json() : json(i.moved_by)},
           {"imported", i.imported},
           {"end", i.end}});
    }
    j["onboardings"].push_back({{"canonical_id", t.canonical_id},
                                {"title", t.title},
                                {"stage", t.stage},
                                {"stage_label", StageLabel(o, t.stage)},
                                {"ended", t.ended},
                                {"days_in_stage", t.ended ? json() : json(WholeDays(t.in_stage_ms))},
                                {"days_open", WholeDays(t.open_ms)},
                                {"stuck", t.stuck},
                                {"overdue", t.overdue},
                                {"history", history}});
  }
  return j;
}

// ---- HTML ----

namespace {

const char* kPalette[] = {"#4e79a7", "#76b7b2", "#f28e2b", "#e15759", "#b07aa1",
                          "#9c755f", "#edc948", "#bab0ac", "#ff9da7", "#86bcb6"};
const char* kEndColor = "#59a14f";

std::string ColorOf(const OnboardingReport& r, const std::string& stage) {
  if (r.options.end_stages.count(stage)) return kEndColor;
  size_t index = 0;
  for (const FunnelRow& f : r.funnel) {
    if (f.stage == stage) break;
    if (!f.end) ++index;
  }
  return kPalette[index % (sizeof kPalette / sizeof kPalette[0])];
}

const char* kCss = R"css(
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --stuck: #c62828; --overdue: #8e24aa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: var(--ink); margin: 0; padding: 24px 32px; background: #f7f9fb; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 0 0 12px; }
.asof { color: var(--muted); margin: 0 0 18px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 0 0 18px; }
.cards { display: flex; gap: 14px; background: none; border: none; padding: 0; }
.card { flex: 1; background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; }
.card b { display: block; font-size: 26px; }
.card.stuck b { color: var(--stuck); }
.card.overdue b { color: var(--overdue); }
svg text { font-family: inherit; fill: var(--ink); }
svg .muted { fill: var(--muted); }
svg .axis line { stroke: var(--line); }
svg .now line { stroke: var(--ink); stroke-dasharray: 3 3; }
svg .segment.current.stuck { stroke: var(--stuck); stroke-width: 2; }
svg .days.stuck { fill: var(--stuck); font-weight: 600; }
.legend { display: flex; flex-wrap: wrap; gap: 14px; margin: 0 0 10px; color: var(--muted); }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px; margin-right: 5px;
            vertical-align: -1px; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.stuck td:first-child { border-left: 3px solid var(--stuck); }
.flag { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; color: #fff; }
.flag.stuck { background: var(--stuck); }
.flag.overdue { background: var(--overdue); }
.flag.ended { background: #59a14f; }
footer { color: var(--muted); font-size: 12px; }
)css";

// The SVG funnel: one centred bar per stage, as wide as its share of the largest stage.
std::string FunnelSvg(const OnboardingReport& r) {
  const int row_h = 30, label_w = 170, bar_w = 560, count_w = 170;
  const int width = label_w + bar_w + count_w;
  const int height = static_cast<int>(r.funnel.size()) * row_h + 4;
  int max_count = 1;
  for (const FunnelRow& f : r.funnel) max_count = std::max(max_count, f.count);
  std::string s = fmt::format(
      "<svg class=\"funnel\" viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\" "
      "aria-label=\"Onboardings per stage\">\n",
      width, height);
  int y = 2;
  for (const FunnelRow& f : r.funnel) {
    const int w = std::max(3, f.count * bar_w / max_count);
    const int x = label_w + (bar_w - w) / 2;
    s += fmt::format("<g class=\"funnel-row\" data-stage=\"{}\" data-count=\"{}\">",
                     EscapeHtml(StageName(f.stage)), f.count);
    s += fmt::format("<title>{}: {} onboarding(s){}{}</title>", EscapeHtml(StageBoth(r.options, f.stage)),
                     f.count, f.stuck > 0 ? fmt::format(", {} stuck", f.stuck) : "",
                     f.end ? " (end stage)" : "");
    // Cut at its end, never at its start: the label is anchored where it ends.
    s += fmt::format("<text class=\"stage\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>", label_w - 12,
                     y + 19, EscapeHtml(Clip(StageLabel(r.options, f.stage), 20)));
    s += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" rx=\"3\" fill=\"{}\"/>", x, y + 3, w,
                     row_h - 6, ColorOf(r, f.stage));
    s += fmt::format("<text x=\"{}\" y=\"{}\"><tspan font-weight=\"600\">{}</tspan>{}{}</text>",
                     label_w + bar_w + 12, y + 19, f.count,
                     f.stuck > 0 ? fmt::format(" <tspan fill=\"#c62828\">({} stuck)</tspan>", f.stuck) : "",
                     f.end ? " <tspan class=\"muted\">end stage</tspan>" : "");
    s += "</g>\n";
    y += row_h;
  }
  return s + "</svg>\n";
}

// Tick spacing in days: the smallest that keeps the axis to about eight labels (whole four-year
// spans beyond two years, however far back the records' times reach).
int64_t TickDays(int64_t span_ms) {
  for (int64_t d : {1, 2, 7, 14, 30, 61, 91, 182, 365, 730})
    if (span_ms / (d * kDayMs) <= 8) return d;
  return (span_ms / 8 / (1461 * kDayMs) + 1) * 1461;
}

// One row per onboarding on a shared time axis: a segment per stay in a stage.
std::string TimelineSvg(const OnboardingReport& r) {
  const ReportOptions& o = r.options;
  const int label_w = 250, bars_w = 660, tail_w = 230, row_h = 28, axis_h = 26;
  const int width = label_w + bars_w + tail_w;
  const int height = axis_h + static_cast<int>(r.onboardings.size()) * row_h + 6;
  int64_t start = o.now_ms;
  for (const OnboardingTimeline& t : r.onboardings)
    for (const StageInterval& i : t.intervals)
      if (i.entered_ms > 0) start = std::min(start, i.entered_ms);
  // A little room before the first entry, so its segment does not touch the labels.
  int64_t span = std::max<int64_t>(Elapsed(start, o.now_ms), kDayMs);
  start = AddCapped(start, -(span / 40));
  span = std::max<int64_t>(Elapsed(start, o.now_ms), 1);
  auto x_of = [&](int64_t ms) {
    return label_w + static_cast<double>(Elapsed(start, std::clamp(ms, start, o.now_ms))) * bars_w /
                         static_cast<double>(span);
  };

  std::string s = fmt::format(
      "<svg class=\"timeline-chart\" viewBox=\"0 0 {} {}\" width=\"100%\" role=\"img\" "
      "aria-label=\"Stage history per onboarding\">\n<g class=\"axis\">",
      width, height);
  const int64_t step = TickDays(span) * kDayMs;
  for (int64_t t = AddCapped(start / kDayMs * kDayMs, kDayMs); t < o.now_ms;
       t = AddCapped(t, step)) {
    const double x = x_of(t);
    if (label_w + bars_w - x < 160) break;  // keep clear of the "as of" label
    s += fmt::format("<line x1=\"{:.1f}\" y1=\"{}\" x2=\"{:.1f}\" y2=\"{}\"/>", x, axis_h - 6, x, height);
    s += fmt::format("<text class=\"muted\" x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\" "
                     "font-size=\"11\">{}</text>", x, axis_h - 10, Date(t));
  }
  s += "</g>\n";
  s += fmt::format("<g class=\"now\"><line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><text x=\"{}\" y=\"{}\" "
                   "text-anchor=\"end\" font-size=\"11\" font-weight=\"600\">{}</text></g>\n",
                   label_w + bars_w, axis_h - 6, label_w + bars_w, height, label_w + bars_w, axis_h - 10,
                   "as of " + Date(o.now_ms));

  int y = axis_h;
  for (const OnboardingTimeline& t : r.onboardings) {
    s += fmt::format("<g class=\"timeline{}\" data-id=\"{}\" data-stage=\"{}\">", t.stuck ? " stuck" : "",
                     EscapeHtml(t.canonical_id), EscapeHtml(t.stage));
    // Names start at the chart's left edge and are cut at their end, so the beginning of a long
    // one ("SE Bygg Göteborg 14 AB – onboarding") is never lost; the whole name is its tooltip.
    s += fmt::format("<text class=\"name\" x=\"8\" y=\"{}\"><title>{}</title>{}</text>", y + 18,
                     EscapeHtml(t.title), EscapeHtml(Clip(t.title, 28)));
    for (size_t k = 0; k < t.intervals.size(); ++k) {
      const StageInterval& i = t.intervals[k];
      const bool current = k + 1 == t.intervals.size();
      const double x1 = i.entered_ms > 0 ? x_of(i.entered_ms) : label_w;
      const double x2 = x_of(i.left_ms > 0 ? i.left_ms : o.now_ms);
      const int64_t until = i.left_ms > 0 ? i.left_ms : o.now_ms;
      const std::string what = fmt::format(
          "{}: {} to {}{}{}", StageBoth(o, i.stage),
          i.entered_ms > 0 ? Date(i.entered_ms) : "before the history",
          i.left_ms > 0 ? Date(i.left_ms) : "now",
          i.entered_ms > 0 ? fmt::format(" ({} days{})", WholeDays(Elapsed(i.entered_ms, until)),
                                         i.end ? ", not counted: end stage" : "")
                           : "",
          i.moved_by.empty() ? "" : ", moved by " + i.moved_by);
      s += fmt::format(
          "<rect class=\"segment{}{}\" data-stage=\"{}\" x=\"{:.1f}\" y=\"{}\" width=\"{:.1f}\" "
          "height=\"{}\" rx=\"2\" fill=\"{}\"{}><title>{}</title></rect>",
          current ? " current" : "", current && t.stuck ? " stuck" : "", EscapeHtml(i.stage), x1, y + 5,
          std::max(2.0, x2 - x1), row_h - 10, ColorOf(r, i.stage),
          i.entered_ms > 0 ? "" : " fill-opacity=\"0.45\"", EscapeHtml(what));
    }
    const std::string tail =
        t.ended ? StageLabel(o, t.stage) + ", clock stopped"
                : fmt::format("{} d in {}", WholeDays(t.in_stage_ms), StageLabel(o, t.stage));
    s += fmt::format("<text class=\"days{}\" x=\"{}\" y=\"{}\" font-size=\"12\">{}{}</text>",
                     t.stuck ? " stuck" : "", label_w + bars_w + 10, y + 18, EscapeHtml(Clip(tail, 26)),
                     t.overdue ? " <tspan fill=\"#8e24aa\">●</tspan>" : "");
    s += "</g>\n";
    y += row_h;
  }
  return s + "</svg>\n";
}

}  // namespace

std::string ReportCss() { return kCss; }

std::string RenderHtml(const OnboardingReport& r) {
  std::string h;
  h += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += fmt::format("<title>Onboardings as of {}</title>\n", EscapeHtml(Date(r.options.now_ms)));
  h += "<style>" + std::string(kCss) + "</style>\n</head>\n<body>\n";
  h += RenderHtmlSections(r);
  h += fmt::format("<footer>crmbridge report onboarding, from the state store's stage history ({} "
                   "onboardings, {} listed).</footer>\n</body>\n</html>\n",
                   r.total, r.onboardings.size());
  return h;
}

std::string RenderHtmlSections(const OnboardingReport& r) {
  const ReportOptions& o = r.options;
  const int64_t stuck_days = WholeDays(o.stuck_after_ms), overdue_days = WholeDays(o.escalate_after_ms);
  std::string h;
  h += fmt::format("<header><h1>Onboardings</h1><p class=\"asof\">{} as of {} · stuck after {} days in a "
                   "stage · overdue after {} days open · end stage: {} (days stop counting there){}</p>"
                   "</header>\n",
                   EscapeHtml(o.entity), EscapeHtml(Time(o.now_ms)), stuck_days, overdue_days,
                   EscapeHtml(EndStagesText(o)),
                   o.label_system.empty()
                       ? ""
                       : " · stages as " + EscapeHtml(o.label_system) +
                             " names them (the canonical name in each tooltip)");
  h += "<section id=\"summary\" class=\"cards\">\n";
  h += fmt::format("<div class=\"card open\"><b>{}</b>open</div>\n", r.open);
  h += fmt::format("<div class=\"card stuck\"><b>{}</b>stuck {}+ days in their stage</div>\n", r.stuck, stuck_days);
  h += fmt::format("<div class=\"card overdue\"><b>{}</b>open {}+ days</div>\n", r.overdue, overdue_days);
  h += fmt::format("<div class=\"card ended\"><b>{}</b>reached an end stage</div>\n", r.total - r.open);
  h += "</section>\n";

  h += "<section id=\"funnel\">\n<h2>Funnel: onboardings per stage now</h2>\n" + FunnelSvg(r) + "</section>\n";

  h += "<section id=\"timeline\">\n<h2>Timeline: the stages of each onboarding</h2>\n<div class=\"legend\">";
  for (const FunnelRow& f : r.funnel)
    h += fmt::format("<span title=\"{}\"><i style=\"background:{}\"></i>{}</span>",
                     EscapeHtml(StageName(f.stage)), ColorOf(r, f.stage),
                     EscapeHtml(StageLabel(o, f.stage)));
  h += fmt::format("<span><i style=\"background:#fff;border:2px solid #c62828\"></i>stuck {}+ days</span>",
                   stuck_days);
  h += fmt::format("<span><b style=\"color:#8e24aa\">●</b> open {}+ days</span></div>\n", overdue_days);
  if (r.onboardings.empty())
    h += "<p>No open onboardings.</p>\n";
  else
    h += TimelineSvg(r);
  h += "</section>\n";

  h += "<section id=\"table\">\n<h2>Onboardings, longest in their stage first</h2>\n<table>\n"
       "<thead><tr><th>Customer</th><th>Stage</th><th>Days in stage</th><th>Days open</th>"
       "<th>Moved there by</th><th>Since</th><th></th></tr></thead>\n<tbody>\n";
  for (const OnboardingTimeline& t : r.onboardings) {
    const StageInterval* cur = t.intervals.empty() ? nullptr : &t.intervals.back();
    std::string flags;
    if (t.stuck) flags += fmt::format("<span class=\"flag stuck\">stuck {}d+</span> ", stuck_days);
    if (t.overdue) flags += fmt::format("<span class=\"flag overdue\">open {}d+</span>", overdue_days);
    if (t.ended) flags = "<span class=\"flag ended\">ended</span>";
    h += fmt::format(
        "<tr class=\"onboarding{}\" data-id=\"{}\"><td>{}</td><td title=\"{}\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>\n",
        t.stuck ? " stuck" : "", EscapeHtml(t.canonical_id), EscapeHtml(t.title),
        EscapeHtml(StageName(t.stage)), EscapeHtml(StageLabel(o, t.stage)),
        t.ended ? "stopped" : std::to_string(WholeDays(t.in_stage_ms)), WholeDays(t.open_ms),
        EscapeHtml(cur && !cur->moved_by.empty() ? cur->moved_by : "-"),
        EscapeHtml(cur ? Date(cur->entered_ms) : "-"), flags);
  }
  h += "</tbody>\n</table>\n</section>\n";
  return h;
}

}  // namespace crmbridge::report
