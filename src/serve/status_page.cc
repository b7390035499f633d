#include "src/serve/status_page.h"

#include <fmt/format.h>

#include "src/core/time_util.h"
#include "src/report/onboarding_report.h"

namespace crmbridge {

using report::EscapeHtml;

namespace {

std::string When(int64_t ms) { return ms > 0 ? FormatIsoUtc(ms, false) : "-"; }

// Per system counts ({"hubspot": 3}) as table rows; "none" when empty.
std::string CountRows(const nlohmann::json& counts, const char* id) {
  if (!counts.is_object() || counts.empty())
    return fmt::format("<p id=\"{}\">none</p>\n", id);
  std::string h = fmt::format("<table id=\"{}\"><tbody>\n", id);
  for (const auto& [system, n] : counts.items())
    h += fmt::format("<tr><td>{}</td><td class=\"num\">{}</td></tr>\n", EscapeHtml(system), n.dump());
  return h + "</tbody></table>\n";
}

constexpr const char* kStatusCss = R"css(
#status { margin: 0 0 2rem; }
#status .grid { display: flex; flex-wrap: wrap; gap: 2rem; }
#status .grid > div { min-width: 12rem; }
#status td.err { color: #c62828; max-width: 32rem; overflow-wrap: anywhere; }
)css";

}  // namespace

Result<std::string> RenderLiveStatus(Store& store, const MappingPlan& plan, const StatusFacts& facts) {
  auto runs = store.RecentRuns(10);
  if (!runs.ok()) return runs.status();
  auto outbox = store.OutboxCounts();
  if (!outbox.ok()) return outbox.status();
  auto dead = store.DeadLetterCounts();
  if (!dead.ok()) return dead.status();
  auto pending = store.PendingWebhookEvents(0);
  if (!pending.ok()) return pending.status();

  std::string h = "<section id=\"status\">\n<h2>Sync status</h2>\n";
  h += fmt::format("<p class=\"asof\">as of {} · refreshed <span id=\"refreshes\">0</span> "
                   "time(s) on this page</p>\n",
                   EscapeHtml(When(facts.now_ms)));
  h += "<div class=\"grid\">\n<div><h3>Outbox pending</h3>\n" + CountRows(*outbox, "outbox") + "</div>\n";
  h += "<div><h3>Dead letters</h3>\n" + CountRows(*dead, "dead-letters") + "</div>\n";
  h += fmt::format("<div><h3>Webhooks</h3>\n<p>changes waiting for a run: <b id=\"webhooks-pending\">{}"
                   "</b></p>\n<p>last delivery: <span id=\"last-webhook\">{}{}</span></p>\n</div>\n",
                   pending->size(), EscapeHtml(When(facts.last_webhook_ms)),
                   facts.last_webhook_system.empty()
                       ? ""
                       : " from " + EscapeHtml(facts.last_webhook_system));
  h += "</div>\n<h3>Recent runs</h3>\n";
  if (runs->empty()) {
    h += "<p id=\"runs\">none yet</p>\n";
  } else {
    h += "<table id=\"runs\">\n<thead><tr><th>Run</th><th>Mode</th><th>Started</th><th>Seconds</th>"
         "<th>Outcome</th><th>Writes</th><th>Error</th></tr></thead>\n<tbody>\n";
    for (const RunRecord& r : *runs) {
      const auto writes = r.counts.find("writes");
      h += fmt::format(
          "<tr data-run=\"{}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td class=\"num\">{:.1f}"
          "</td><td>{}</td><td class=\"num\">{}</td><td class=\"err\">{}</td></tr>\n",
          r.id, r.id, EscapeHtml(r.mode), EscapeHtml(When(r.started_ms)),
          r.finished_ms > 0 ? static_cast<double>(r.finished_ms - r.started_ms) / 1000 : 0.0,
          EscapeHtml(r.outcome), EscapeHtml(writes != r.counts.end() ? writes->dump() : "-"),
          EscapeHtml(r.error));
    }
    h += "</tbody>\n</table>\n";
  }
  h += "</section>\n";

  report::ReportOptions options;
  options.now_ms = facts.now_ms;
  if (Status s = report::StagesFromPlan(plan, &options); !s.ok()) {
    h += "<section id=\"report\"><p>No onboarding report: " + EscapeHtml(s.message()) + "</p></section>\n";
    return h;
  }
  auto onboardings = report::LoadOnboardingReport(store, options);
  if (!onboardings.ok()) return onboardings.status();
  return h + "<section id=\"report\">\n" + report::RenderHtmlSections(*onboardings) + "</section>\n";
}

std::string RenderStatusPage(const std::string& live, int64_t refresh_ms) {
  std::string h = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  h += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  h += "<title>crmbridge status</title>\n";
  h += "<style>" + report::ReportCss() + kStatusCss + "</style>\n</head>\n<body>\n";
  h += "<h1>crmbridge</h1>\n<main id=\"live\">\n" + live + "</main>\n";
  h += "<footer>crmbridge serve: this page reads the state store again every " +
       std::to_string(refresh_ms / 1000) + " s.</footer>\n";
  // The fragment is server-rendered, escaped HTML: it replaces the old one as it is. A failed
  // fetch keeps what is shown.
  h += fmt::format(R"js(<script>
(function () {{
  var refreshes = 0;
  function refresh() {{
    fetch('status/live', {{cache: 'no-store'}}).then(function (r) {{
      if (!r.ok) throw new Error(r.status);
      return r.text();
    }}).then(function (html) {{
      document.getElementById('live').innerHTML = html;
      refreshes++;
      var n = document.getElementById('refreshes');
      if (n) n.textContent = String(refreshes);
    }}).catch(function () {{}});
  }}
  setInterval(refresh, {});
}})();
</script>
)js",
                   refresh_ms);
  return h + "</body>\n</html>\n";
}

}  // namespace crmbridge
