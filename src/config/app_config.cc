#include "src/config/app_config.h"

#include <cstdlib>
#include <set>
#include <string_view>
#include <vector>

#include "src/core/did_you_mean.h"
#include "src/core/redaction.h"
#include "src/core/time_util.h"
#include "src/core/url.h"

namespace crmbridge {

const std::vector<ConfigKey>& ConfigKeys() {
  static const std::vector<ConfigKey> kKeys = {
      {"", "state", "state_path", "path",
       "the state store: a SQLite file (created on first use) or a postgresql:// URL"},
      {"", "mappings", "mapping_paths", "list", "the mapping files, in the order they are loaded"},
      {"", "sync", "sync", "map", "how runs write, retry and hold the lease (below)"},
      {"", "systems", "systems", "map", "the systems by name; a name is stored in links: never "
                                        "rename one"},
      {"sync", "lease_ttl", "lease_ttl", "duration",
       "a crashed run's lease expires after it (default 10m, at least 1s)"},
      {"sync", "max_outbox_attempts", "max_outbox_attempts", "number",
       "transient failures of a write before it is dead-lettered (default 8)"},
      {"sync", "retry_backoff", "retry_backoff", "duration",
       "a failed write's first wait, doubling with jitter (default 30s; 0s: within the run)"},
      {"sync", "retry_backoff_max", "retry_backoff_max", "duration",
       "the longest wait between a write's attempts (default 1h)"},
      {"sync", "max_verify_attempts", "max_verify_attempts", "number",
       "rewrites of a write acknowledged but not applied before it is dead-lettered (default 3)"},
      {"", "schedule", "schedule", "map",
       "when a worker syncs this configuration as a tenant, or `daemon` and `serve` run it "
       "(below)"},
      {"schedule", "every", "every", "duration",
       "a tenant's time between run starts, and `daemon`'s and `serve`'s unless `--every` is "
       "given (default 5m, at least 10s)"},
      {"system", "kind", "kind", "kind", "the connector: hubspot, dynamics365, totango or portal"},
      {"system", "base_url", "base_url", "url", "the API's address: http:// or https:// and a host, no query"},
      {"system", "auth", "auth", "map",
       "credentials, as ${env:NAME} for secrets; the keys the kind declares"},
      {"system", "rate_limit", "rate_limit", "map", "the system's request budget"},
      {"system", "search_rate_limit", "search_rate_limit", "map",
       "a second budget for search requests, for kinds that make them (HubSpot: 5 per second)"},
      {"system", "timeout", "timeout", "duration", "one HTTP request's deadline (default 30s)"},
      {"system", "max_attempts", "max_attempts", "number",
       "tries of one HTTP request, the first included (default 6)"},
      {"system", "options", "options", "map", "the options the kind declares, as strings"},
      {"limit", "requests", "requests", "number", "requests allowed per window"},
      {"limit", "per", "per", "duration", "the window the budget refills over"},
  };
  return kKeys;
}

std::string ConfigKeyPath(const ConfigKey& key) {
  const std::string section = key.section;
  if (section.empty()) return key.key;
  if (section == "system") return std::string("systems.NAME.") + key.key;
  if (section == "limit") return std::string("rate_limit.") + key.key;
  return section + "." + key.key;
}

namespace {

const std::set<std::string> kKinds = {"hubspot", "dynamics365", "totango", "portal"};
// The keys of one section of ConfigKeys().
std::set<std::string> KeysOf(const std::string& section) {
  std::set<std::string> keys;
  for (const ConfigKey& k : ConfigKeys())
    if (section == k.section) keys.insert(k.key);
  return keys;
}

const std::set<std::string> kTopKeys = KeysOf("");
const std::set<std::string> kSystemKeys = KeysOf("system");
const std::set<std::string> kSyncKeys = KeysOf("sync");
const std::set<std::string> kScheduleKeys = KeysOf("schedule");
const std::set<std::string> kLimitKeys = KeysOf("limit");
// Auth keys whose values are credentials: they must be ${env:} references.
const std::set<std::string> kSecretAuthKeys = {"token", "client_secret", "refresh_token",
                                               "app_token", "password", "webhook_key"};


std::string DirOf(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

// A state store named by URL (PostgreSQL) rather than by a file path.
bool IsDatabaseUrl(const std::string& s) {
  return s.rfind("postgresql://", 0) == 0 || s.rfind("postgres://", 0) == 0;
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || path == ":memory:") return path;
  return base_dir + "/" + path;
}

// A ${env:NAME} reference: where it is in its value, and the NAME.
struct Reference {
  size_t position;
  size_t length;
  std::string name;
};

// The ${env:NAME} references of `raw`, NAME as [A-Za-z_][A-Za-z0-9_]*, in order. Found by hand:
// std::regex recurses once per character it matches, and a long name overflows the stack.
std::vector<Reference> References(const std::string& raw) {
  auto letter = [](char c) { return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  std::vector<Reference> out;
  constexpr std::string_view kOpen = "${env:";
  for (size_t at = raw.find(kOpen); at != std::string::npos; at = raw.find(kOpen, at + 1)) {
    const size_t from = at + kOpen.size();
    size_t end = from;
    while (end < raw.size() && (letter(raw[end]) || (end > from && digit(raw[end])))) ++end;
    if (end == from || end == raw.size() || raw[end] != '}') continue;
    out.push_back(Reference{at, end + 1 - at, raw.substr(from, end - from)});
    at = end;
  }
  return out;
}

// Whether `raw` is one ${env:NAME} reference and nothing else: a secret's whole value comes from
// the environment (a literal beside a reference would still be a secret written in the file).
bool IsWholeReference(const std::string& raw) {
  const std::vector<Reference> refs = References(raw);
  return refs.size() == 1 && refs[0].position == 0 && refs[0].length == raw.size();
}

// The first control character of `text` (a line break, a tab, NUL), or npos. A value with one
// would split an HTTP header or a URL in two.
size_t ControlCharAt(const std::string& text) {
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) return i;
  }
  return std::string::npos;
}

// The password a database URL carries, as it is written there: between "user:" and "@" in its
// authority, or the value of `password=` up to the next "&"; nullopt when it carries none.
std::optional<std::string> UrlPassword(const std::string& url) {
  if (const size_t q = url.find("password="); q != std::string::npos)
    return url.substr(q + 9, url.find('&', q) - q - 9);
  const std::optional<UrlParts> parts = SplitUrl(url);
  // Without a scheme, the text is read as an authority all the same: a password is hidden
  // whichever way it was written.
  const std::string_view authority =
      parts ? parts->authority : std::string_view(url).substr(0, url.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  const size_t colon = authority.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon > at) return std::nullopt;
  return std::string(authority.substr(colon + 1, at - colon - 1));
}

class Loader {
 public:
  Loader(std::string file, const EnvLookup& env, bool unset_env_warns = false)
      : file_(std::move(file)), env_(env), unset_env_warns_(unset_env_warns) {}

  Diagnostics& diags() { return diags_; }

  SourcePos Pos(const YAML::Node& n) { return PosOf(n, file_); }

  // A key's text. A key that is a list, a map or null (`? [a, b]`, `~:`) names nothing: it is
  // reported, and nullopt (yaml-cpp throws when one is read as a string).
  std::optional<std::string> Key(const YAML::Node& key) {
    if (key.IsScalar()) return key.Scalar();
    diags_.Error(Pos(key), "a key must be a name, not a list, a map or null");
    return std::nullopt;
  }

  void CheckKeys(const YAML::Node& map, const std::set<std::string>& known, const char* what) {
    for (const auto& kv : map) {
      const std::optional<std::string> name = Key(kv.first);
      if (!name) continue;
      const std::string& key = *name;
      if (!known.count(key))
        diags_.Error(Pos(kv.first), std::string("unknown key '") + key + "' in " + what,
                     DidYouMean(key, known));
    }
  }

  // A scalar string with ${env:NAME} references resolved; nullopt (and a diagnostic) on error.
  std::optional<std::string> String(const YAML::Node& n, const std::string& what) {
    if (!n.IsScalar()) {
      diags_.Error(Pos(n), what + " must be a string");
      return std::nullopt;
    }
    return Expand(n.Scalar(), n);
  }

  std::optional<std::string> Expand(const std::string& raw, const YAML::Node& n) {
    std::string out;
    size_t last = 0;
    bool ok = true;
    for (const Reference& ref : References(raw)) {
      out += raw.substr(last, ref.position - last);
      const std::string& name = ref.name;
      auto value = env_(name);
      if (!value && unset_env_warns_) {
        diags_.Warning(Pos(n), "environment variable " + name + " is not set",
                       "sync, backfill, daemon and serve refuse it; export " + name + "=...");
        ok = false;
      } else if (!value) {
        diags_.Error(Pos(n), "environment variable " + name + " is not set",
                     "export " + name + "=...");
        ok = false;
      } else if (ControlCharAt(*value) != std::string::npos) {
        diags_.Error(Pos(n), "environment variable " + name + " holds a control character (a line "
                                 "break, a tab or NUL)",
                     "credentials, URLs and paths are one line of text: set " + name +
                         " without it");
        ok = false;
      } else {
        out += *value;
      }
      last = ref.position + ref.length;
    }
    out += raw.substr(last);
    if (ok && raw.find("${") != std::string::npos && out.find("${") != std::string::npos &&
        out == raw) {
      // Only the reference is shown: the rest of the value may be a credential.
      const size_t from = raw.find("${");
      const size_t close = raw.find('}', from);
      const size_t shown = close == std::string::npos ? 24 : std::min<size_t>(close + 1 - from, 48);
      const std::string bad = raw.substr(from, shown);
      diags_.Error(Pos(n), "malformed reference '" + bad + "'", "write ${env:NAME}");
      return std::nullopt;
    }
    if (!ok) return std::nullopt;
    return out;
  }

  // `least`: the shortest the setting works with (a lease of 0s is taken over at once, a window
  // of 0s divides by zero, a timeout of 0s fails every request).
  std::optional<std::chrono::milliseconds> Duration(const YAML::Node& n, const std::string& what,
                                                    const std::string& least = "0s",
                                                    const std::string& why = "") {
    auto d = n.IsScalar() ? ParseDuration(n.Scalar()) : std::nullopt;
    if (!d) {
      diags_.Error(Pos(n), what + " must be a duration", "e.g. 500ms, 30s, 5m, 1h, 7d; at most 36500d");
    } else if (*d < *ParseDuration(least)) {
      diags_.Error(Pos(n), what + " must be at least " + least + why);
      return std::nullopt;
    }
    return d;
  }

  std::optional<int> Int(const YAML::Node& n, const std::string& what, int min) {
    try {
      if (n.IsScalar()) {
        int v = n.as<int>();
        if (v >= min) return v;
      }
    } catch (const YAML::Exception&) {
    }
    diags_.Error(Pos(n), what + " must be a whole number >= " + std::to_string(min));
    return std::nullopt;
  }

  void RateLimit(const YAML::Node& n, const std::string& what, RateLimitConfig* out) {
    if (!n.IsMap()) {
      diags_.Error(Pos(n), what + " must be a map", "e.g. {requests: 100, per: 10s}");
      return;
    }
    CheckKeys(n, kLimitKeys, what.c_str());
    if (!n["requests"]) diags_.Error(Pos(n), what + " needs 'requests'");
    if (!n["per"]) diags_.Error(Pos(n), what + " needs 'per'");
    if (n["requests"])
      if (auto v = Int(n["requests"], what + ".requests", 1)) out->requests = *v;
    if (n["per"])
      if (auto d = Duration(n["per"], what + ".per", "1ms")) out->per = *d;
  }

  void System(const std::string& name, const YAML::Node& n, SystemConfig* sys) {
    sys->name = name;
    sys->pos = Pos(n);
    if (!n.IsMap()) {
      diags_.Error(Pos(n), "system '" + name + "' must be a map");
      return;
    }
    CheckKeys(n, kSystemKeys, ("system '" + name + "'").c_str());
    if (!n["kind"]) {
      diags_.Error(Pos(n), "system '" + name + "' needs 'kind'", DidYouMean("", kKinds));
    } else if (auto kind = String(n["kind"], "kind")) {
      if (!kKinds.count(*kind))
        diags_.Error(Pos(n["kind"]), "unknown kind '" + *kind + "'", DidYouMean(*kind, kKinds));
      else
        sys->kind = *kind;
    }
    if (!n["base_url"]) {
      diags_.Error(Pos(n), "system '" + name + "' needs 'base_url'");
    } else if (auto url = String(n["base_url"], "base_url")) {
      const bool http = url->rfind("http://", 0) == 0 || url->rfind("https://", 0) == 0;
      while (!url->empty() && url->back() == '/') url->pop_back();
      const std::optional<UrlParts> parts = SplitUrl(*url);
      if (!http) {
        diags_.Error(Pos(n["base_url"]), "base_url must start with http:// or https://");
      } else if (!IsHttpUrl(*url)) {
        diags_.Error(Pos(n["base_url"]), "base_url names no host",
                     "give the API's address, e.g. https://api.example.com");
      } else if (parts->authority.find('@') != std::string_view::npos) {
        diags_.Error(Pos(n["base_url"]),
                     "base_url holds credentials (user:password@); they would be sent and "
                     "logged with every URL",
                     "give the host alone, and the credentials under auth as ${env:NAME}");
      } else if (parts->rest.find_first_of("?#") != std::string_view::npos) {
        // Each request's path and query are appended to it: they would land inside its query.
        diags_.Error(Pos(n["base_url"]), "base_url holds a query or fragment (?, #)",
                     "give the API's address alone; paths and queries are added per request");
      } else {
        sys->base_url = *url;
      }
    }
    if (n["auth"]) {
      const YAML::Node auth = n["auth"];
      if (!auth.IsMap()) {
        diags_.Error(Pos(auth), "auth must be a map of credential names to ${env:NAME}");
      } else {
        for (const auto& kv : auth) {
          const std::optional<std::string> name = Key(kv.first);
          if (!name) continue;
          const std::string& key = *name;
          sys->key_pos["auth." + key] = Pos(kv.first);
          if (!kv.second.IsScalar()) {
            diags_.Error(Pos(kv.second), "auth." + key + " must be a string");
            continue;
          }
          const std::string raw = kv.second.Scalar();
          if (kSecretAuthKeys.count(key) && !IsWholeReference(raw)) {
            diags_.Error(Pos(kv.second),
                         "auth." + key + " is written in the file, in whole or in part; secrets "
                         "never live in it",
                         "auth." + key + ": \"${env:NAME}\", the whole value from the environment");
            continue;
          }
          if (auto v = Expand(raw, kv.second)) {
            // A file named relative to the configuration is found beside it, wherever crmbridge
            // runs from (certificate credentials: auth.certificate_file, auth.private_key_file).
            const bool file = key.size() > 5 && key.compare(key.size() - 5, 5, "_file") == 0;
            if (file) *v = Resolve(DirOf(file_), *v);
            sys->auth[key] = *v;
            if (kSecretAuthKeys.count(key)) Redactor::Global().AddSecret(*v);
          }
        }
      }
    }
    RequireAuth(n, *sys);
    if (n["rate_limit"]) RateLimit(n["rate_limit"], "rate_limit", &sys->rate_limit);
    if (n["search_rate_limit"]) {
      sys->key_pos["search_rate_limit"] = Pos(n["search_rate_limit"]);
      RateLimit(n["search_rate_limit"], "search_rate_limit", &sys->search_rate_limit);
    }
    if (n["timeout"])
      if (auto d = Duration(n["timeout"], "timeout", "1ms")) sys->timeout = *d;
    if (n["max_attempts"])
      if (auto v = Int(n["max_attempts"], "max_attempts", 1)) sys->max_attempts = *v;
    if (n["options"]) {
      if (!n["options"].IsMap()) {
        diags_.Error(Pos(n["options"]), "options must be a map of strings");
      } else {
        for (const auto& kv : n["options"]) {
          const std::optional<std::string> key = Key(kv.first);
          if (!key) continue;
          sys->key_pos["options." + *key] = Pos(kv.first);
          if (auto v = String(kv.second, "options." + *key)) sys->options[*key] = *v;
        }
      }
    }
  }

  void RequireAuth(const YAML::Node& n, const SystemConfig& sys) {
    std::vector<std::string> need;
    if (sys.kind == "hubspot") {
      if (!sys.auth.count("token") && !(sys.auth.count("client_id") &&
                                         sys.auth.count("client_secret") &&
                                         sys.auth.count("refresh_token")))
        need = {"token"};
      // A private-app token and an OAuth app's refresh token: one would be used, the other not.
      if (auto token = sys.key_pos.find("auth.token");
          token != sys.key_pos.end() && sys.key_pos.count("auth.refresh_token"))
        diags_.Error(token->second,
                     "a hubspot system takes auth.token (a private app) or auth.client_id, "
                     "auth.client_secret and auth.refresh_token (an OAuth app), not both");
    } else if (sys.kind == "dynamics365") {
      need = {"token_url", "client_id", "scope"};
      // A client secret, or a certificate: both of its files, and then no secret.
      const bool certificate = sys.auth.count("certificate_file") || sys.auth.count("private_key_file");
      if (!certificate) {
        need.push_back("client_secret");
      } else {
        need.push_back("certificate_file");
        need.push_back("private_key_file");
        if (auto secret = sys.key_pos.find("auth.client_secret"); secret != sys.key_pos.end())
          diags_.Error(secret->second,
                       "a dynamics365 system takes auth.client_secret or a certificate "
                       "(auth.certificate_file, auth.private_key_file), not both");
      }
    } else if (sys.kind == "totango") {
      // `token` is the connector's other name for it.
      if (!sys.auth.count("token")) need = {"app_token"};
    } else if (sys.kind == "portal") {
      need = {"token"};
    }
    const YAML::Node where = n["auth"] ? n["auth"] : n;
    for (const std::string& key : need) {
      if (sys.auth.count(key)) continue;
      // Keys that failed to resolve were already reported at their own position, and an auth
      // that is not a map was reported as a whole (yaml-cpp throws on a key of a scalar).
      if (n["auth"] && (!n["auth"].IsMap() || n["auth"][key])) continue;
      diags_.Error(Pos(where), "a " + sys.kind + " system needs auth." + key,
                   kSecretAuthKeys.count(key) ? key + ": \"${env:NAME}\"" : "");
    }
  }

  std::string file_;
  const EnvLookup& env_;
  const bool unset_env_warns_;
  Diagnostics diags_;
};

}  // namespace

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  };
}

namespace {

// `tenant`: a tenant's configuration (LoadTenantConfig), whose state is the workers'.
Result<AppConfig> Load(const std::string& path, const EnvLookup& env,
                       std::vector<std::string>* warnings, bool tenant = false) {
  auto doc = LoadYamlFile(path);
  if (!doc.ok()) return doc.status();
  Loader l(path, env, /*unset_env_warns=*/warnings != nullptr);
  AppConfig config;
  config.path = path;
  const std::string dir = DirOf(path);
  const YAML::Node& root = *doc;
  if (!root.IsMap()) {
    l.diags().Error(l.Pos(root), "the configuration must be a map",
                    "top-level keys: state, mappings, sync, systems");
    return l.diags().ToStatus();
  }
  l.CheckKeys(root, kTopKeys, "the configuration");

  if (tenant) {
    if (root["state"])
      l.diags().Error(l.Pos(root["state"]),
                      "a tenant keeps no 'state': its state is in the workers' PostgreSQL, in a "
                      "schema of its own",
                      "remove this key; workers take --state or CRMBRIDGE_STATE_URL");
  } else if (!root["state"]) {
    l.diags().Error(l.Pos(root), "missing 'state': the path of the state store",
                    "state: ./crmbridge-state.db");
  } else if (auto s = l.String(root["state"], "state")) {
    const bool keywords = s->find("password=") != std::string::npos ||
                          s->rfind("host=", 0) == 0 || s->rfind("dbname=", 0) == 0;
    if (!IsDatabaseUrl(*s) && (s->find("://") != std::string::npos || keywords)) {
      // Not a file path: taken as one, it would be a file named after a connection string.
      l.diags().Error(l.Pos(root["state"]),
                      "state is a file path or a postgresql:// URL (the scheme in lower case), "
                      "and this is neither",
                      "state: ./crmbridge-state.db, or state: \"${env:CRMBRIDGE_STATE_URL}\"");
    } else if (IsDatabaseUrl(*s)) {
      // A PostgreSQL URL: its password comes from the environment, like every secret: as the
      // whole URL, or as the password's own text in the file.
      const std::string raw = root["state"].Scalar();
      const std::optional<std::string> password = UrlPassword(*s);
      if (password && !IsWholeReference(raw) && !IsWholeReference(UrlPassword(raw).value_or(""))) {
        l.diags().Error(l.Pos(root["state"]),
                        "the state URL holds a password written in the file; secrets never live in it",
                        "state: \"${env:CRMBRIDGE_STATE_URL}\", or PGPASSWORD / ~/.pgpass for libpq");
      } else if (password) {
        Redactor::Global().AddSecret(*password);
      }
      config.state_path = *s;
    } else {
      config.state_path = Resolve(dir, *s);
    }
  }

  if (root["mappings"]) {
    const YAML::Node m = root["mappings"];
    if (m.IsScalar()) {
      if (auto s = l.String(m, "mappings")) config.mapping_paths.push_back(Resolve(dir, *s));
    } else if (m.IsSequence()) {
      for (const auto& item : m)
        if (auto s = l.String(item, "a mapping path"))
          config.mapping_paths.push_back(Resolve(dir, *s));
    } else {
      l.diags().Error(l.Pos(m), "mappings must be a list of file paths");
    }
  }

  if (root["sync"]) {
    const YAML::Node s = root["sync"];
    if (!s.IsMap()) {
      l.diags().Error(l.Pos(s), "sync must be a map");
    } else {
      if (s["overlap"]) {
        // Once documented, never read: an incremental read's overlap is the connector's own
        // (HubSpot: params.overlap_ms; Dynamics 365 reads by delta token and needs none).
        l.diags().Error(l.Pos(s["overlap"]), "sync.overlap is not a setting: nothing reads it",
                        "remove it; to re-read HubSpot records before the cursor, give "
                        "params: {overlap_ms: 300000} in the mapping");
      }
      std::set<std::string> keys = kSyncKeys;
      keys.insert("overlap");  // refused above, with its own message
      l.CheckKeys(s, keys, "sync");
      if (s["lease_ttl"])
        if (auto d = l.Duration(s["lease_ttl"], "sync.lease_ttl", "1s",
                                ": a shorter lease runs out between its renewals, and another "
                                "run takes it over"))
          config.sync.lease_ttl = *d;
      if (s["retry_backoff"])
        if (auto d = l.Duration(s["retry_backoff"], "sync.retry_backoff")) config.sync.retry_backoff = *d;
      if (s["retry_backoff_max"])
        if (auto d = l.Duration(s["retry_backoff_max"], "sync.retry_backoff_max"))
          config.sync.retry_backoff_max = *d;
      if (s["max_verify_attempts"])
        if (auto v = l.Int(s["max_verify_attempts"], "sync.max_verify_attempts", 1))
          config.sync.max_verify_attempts = *v;
      if (s["max_outbox_attempts"])
        if (auto v = l.Int(s["max_outbox_attempts"], "sync.max_outbox_attempts", 1))
          config.sync.max_outbox_attempts = *v;
    }
  }

  if (root["schedule"]) {
    const YAML::Node s = root["schedule"];
    if (!s.IsMap()) {
      l.diags().Error(l.Pos(s), "schedule must be a map, as {every: 5m}");
    } else {
      l.CheckKeys(s, kScheduleKeys, "schedule");
      if (s["every"]) {
        if (auto d = l.Duration(s["every"], "schedule.every")) {
          if (d->count() < 10'000)
            l.diags().Error(l.Pos(s["every"]), "schedule.every must be at least 10s",
                            "a tenant synced more often than that mostly waits on its vendors' "
                            "limits; webhooks (`crmbridge serve`) bring changes in seconds");
          else
            config.schedule.every = *d;
        }
      }
    }
  }

  if (!root["systems"]) {
    l.diags().Error(l.Pos(root), "missing 'systems': the systems to keep in step");
  } else if (!root["systems"].IsMap()) {
    l.diags().Error(l.Pos(root["systems"]), "systems must be a map of name to system");
  } else {
    for (const auto& kv : root["systems"]) {
      const std::optional<std::string> key = l.Key(kv.first);
      if (!key) continue;
      const std::string& name = *key;
      SystemConfig sys;
      l.System(name, kv.second, &sys);
      sys.pos = l.Pos(kv.first);  // where the system is named, as editors show it
      config.systems.emplace(name, std::move(sys));
    }
  }

  if (warnings != nullptr)
    for (const Diagnostic& w : l.diags().warnings()) warnings->push_back(w.ToString());
  if (!l.diags().empty()) return l.diags().ToStatus();
  return config;
}

}  // namespace

Result<AppConfig> LoadAppConfig(const std::string& path, const EnvLookup& env) {
  return Load(path, env, nullptr);
}

Result<AppConfig> LoadAppConfigWithoutSecrets(const std::string& path,
                                              std::vector<std::string>* warnings,
                                              const EnvLookup& env) {
  std::vector<std::string> ignored;
  return Load(path, env, warnings != nullptr ? warnings : &ignored);
}

Result<AppConfig> LoadTenantConfig(const std::string& path, std::vector<std::string>* warnings,
                                   const EnvLookup& env) {
  return Load(path, env, warnings, /*tenant=*/true);
}

}  // namespace crmbridge
