// The deployment files agree with each other, with the image and with the repository: what a
// cluster would only reveal by failing (a probe on the wrong port, a worker bound to loopback, a
// credential no Secret holds, a mapping file missing from the image) fails here instead.
//
// Reads deploy/kubernetes/*.yaml and deploy/docker/Dockerfile under CRMBRIDGE_SOURCE_DIR, and
// loads the tenant configs with crmbridge's own loaders.
#include <gtest/gtest.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "src/config/app_config.h"
#include "src/engine/bootstrap.h"

namespace crmbridge {
namespace {

namespace fs = std::filesystem;

const fs::path kRoot(CRMBRIDGE_SOURCE_DIR);
const fs::path kManifestDir = kRoot / "deploy" / "kubernetes";
const fs::path kDockerfile = kRoot / "deploy" / "docker" / "Dockerfile";

// Names the manifests give, which the checks below start from.
const char kWorkerName[] = "crmbridge-worker";
const char kMigrateJobName[] = "crmbridge-migrate";
const char kTenantsConfigMap[] = "crmbridge-tenants";
const char kImageMappingDir[] = "/opt/crmbridge/mappings/";
const char kStateUrlVar[] = "CRMBRIDGE_STATE_URL";
// What the worker binds when --listen is not given.
const char kDefaultListen[] = "127.0.0.1:8081";

bool IsNumber(const std::string& s) {
  return !s.empty() &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isdigit(c); });
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// An absent node: false as a condition, and every as<T>(fallback) gives the fallback.
YAML::Node Missing() { return YAML::Node(YAML::NodeType::Undefined); }

// node[k1][k2]..., or Missing() from the first step that is not there: yaml-cpp throws when a
// missing key is indexed again, and a manifest under test may lack anything.
YAML::Node At(const YAML::Node& node, std::initializer_list<const char*> path) {
  YAML::Node at;
  at.reset(node);  // reset, not =: assigning a node overwrites the one it refers to
  for (const char* key : path) {
    if (!at || !at.IsMap()) return Missing();
    const YAML::Node child = static_cast<const YAML::Node&>(at)[key];
    if (!child) return Missing();
    at.reset(child);
  }
  return at;
}

std::vector<std::string> Strings(const YAML::Node& seq) {
  std::vector<std::string> out;
  if (seq && seq.IsSequence())
    for (const auto& item : seq) out.push_back(item.as<std::string>());
  return out;
}

// ---- The manifests --------------------------------------------------------------------------

struct Object {
  std::string file;
  YAML::Node doc;
  std::string kind() const { return At(doc, {"kind"}).as<std::string>(""); }
  std::string name() const { return At(doc, {"metadata", "name"}).as<std::string>(""); }
};

std::vector<fs::path> ManifestFiles() {
  std::vector<fs::path> files;
  if (!fs::is_directory(kManifestDir)) return files;
  for (const auto& entry : fs::directory_iterator(kManifestDir))
    if (entry.is_regular_file() && entry.path().extension() == ".yaml")
      files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

// Every non-empty document of every manifest. A file that does not parse is left out here and
// reported by the test that parses them.
const std::vector<Object>& Objects() {
  static const std::vector<Object> objects = [] {
    std::vector<Object> out;
    for (const fs::path& file : ManifestFiles()) {
      try {
        for (const YAML::Node& doc : YAML::LoadAllFromFile(file.string()))
          if (doc && !doc.IsNull()) out.push_back({file.filename().string(), doc});
      } catch (const YAML::Exception&) {
      }
    }
    return out;
  }();
  return objects;
}

std::optional<Object> Find(const std::string& kind, const std::string& name) {
  for (const Object& o : Objects())
    if (o.kind() == kind && o.name() == name) return o;
  return std::nullopt;
}

// The objects that run pods, with their pod template.
std::vector<std::pair<Object, YAML::Node>> PodTemplates() {
  std::vector<std::pair<Object, YAML::Node>> out;
  for (const Object& o : Objects()) {
    const std::string kind = o.kind();
    if (kind == "Deployment" || kind == "Job" || kind == "StatefulSet" || kind == "DaemonSet")
      out.emplace_back(o, At(o.doc, {"spec", "template"}));
    else if (kind == "CronJob")
      out.emplace_back(o, At(o.doc, {"spec", "jobTemplate", "spec", "template"}));
  }
  return out;
}

const YAML::Node FirstContainer(const YAML::Node& pod_template) {
  const YAML::Node containers = At(pod_template, {"spec", "containers"});
  if (!containers.IsSequence() || containers.size() == 0) return Missing();
  return containers[0];
}

std::set<std::string> SecretKeys(const Object& secret) {
  std::set<std::string> keys;
  for (const char* field : {"stringData", "data"}) {
    const YAML::Node map = At(secret.doc, {field});
    if (map && map.IsMap())
      for (const auto& kv : map) keys.insert(kv.first.as<std::string>());
  }
  return keys;
}

// Whether `container` gets the variable `var` from a key of a Secret among the manifests. An
// `env` entry of the same name wins over envFrom, as it does in Kubernetes.
bool GetsFromSecret(const YAML::Node& container, const std::string& var) {
  const YAML::Node env = At(container, {"env"});
  if (env.IsSequence()) {
    for (const YAML::Node& e : env) {
      if (At(e, {"name"}).as<std::string>("") != var) continue;
      const YAML::Node ref = At(e, {"valueFrom", "secretKeyRef"});
      const auto secret = Find("Secret", At(ref, {"name"}).as<std::string>(""));
      return secret && SecretKeys(*secret).count(At(ref, {"key"}).as<std::string>("")) > 0;
    }
  }
  const YAML::Node env_from = At(container, {"envFrom"});
  if (env_from.IsSequence()) {
    for (const YAML::Node& source : env_from) {
      const std::string prefix = At(source, {"prefix"}).as<std::string>("");
      if (var.rfind(prefix, 0) != 0) continue;
      const auto secret = Find("Secret", At(source, {"secretRef", "name"}).as<std::string>(""));
      if (secret && SecretKeys(*secret).count(var.substr(prefix.size()))) return true;
    }
  }
  return false;
}

// The directory at which `pod_template`'s first container mounts the ConfigMap `name`, or "".
std::string ConfigMapMountPath(const YAML::Node& pod_template, const std::string& name) {
  std::set<std::string> volumes;
  const YAML::Node vols = At(pod_template, {"spec", "volumes"});
  if (vols.IsSequence())
    for (const YAML::Node& v : vols)
      if (At(v, {"configMap", "name"}).as<std::string>("") == name)
        volumes.insert(At(v, {"name"}).as<std::string>(""));
  const YAML::Node mounts = At(FirstContainer(pod_template), {"volumeMounts"});
  if (mounts.IsSequence())
    for (const YAML::Node& m : mounts)
      if (volumes.count(At(m, {"name"}).as<std::string>("")) && !At(m, {"subPath"}))
        return fs::path(At(m, {"mountPath"}).as<std::string>("")).lexically_normal().string();
  return "";
}

// The tenant configs of the tenants ConfigMap, by key.
std::map<std::string, std::string> TenantConfigs() {
  std::map<std::string, std::string> configs;
  const auto map = Find("ConfigMap", kTenantsConfigMap);
  const YAML::Node data = map ? At(map->doc, {"data"}) : Missing();
  if (data.IsMap())
    for (const auto& kv : data) configs[kv.first.as<std::string>()] = kv.second.as<std::string>("");
  return configs;
}

std::vector<std::string> MappingPaths(const std::string& config_text) {
  try {
    return Strings(At(YAML::Load(config_text), {"mappings"}));
  } catch (const YAML::Exception&) {
    return {};
  }
}

// ---- The Dockerfile -------------------------------------------------------------------------

struct Instruction {
  std::string keyword;  // upper case
  std::string args;
};

struct Stage {
  std::string from;
  std::vector<Instruction> instructions;
  std::vector<std::string> Args(const std::string& keyword) const {
    std::vector<std::string> out;
    for (const Instruction& i : instructions)
      if (i.keyword == keyword) out.push_back(i.args);
    return out;
  }
};

// The stages of a Dockerfile, with continuation lines joined and comments dropped.
std::vector<Stage> ParseDockerfile(const std::string& text) {
  std::vector<std::string> logical;
  std::istringstream in(text);
  std::string line, pending;
  while (std::getline(in, line)) {
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    const size_t last = line.find_last_not_of(" \t\r");
    line = line.substr(0, last + 1);
    if (!line.empty() && line.back() == '\\') {
      pending += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    logical.push_back(pending + line);
    pending.clear();
  }
  if (!pending.empty()) logical.push_back(pending);

  std::vector<Stage> stages;
  for (const std::string& l : logical) {
    std::istringstream words(l);
    std::string keyword;
    words >> keyword;
    for (char& c : keyword) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string rest;
    std::getline(words, rest);
    rest.erase(0, rest.find_first_not_of(" \t"));
    if (keyword == "FROM") {
      stages.push_back({rest, {}});
    } else if (!stages.empty()) {
      stages.back().instructions.push_back({keyword, rest});
    }
  }
  return stages;
}

std::optional<Stage> FinalStage() {
  const std::vector<Stage> stages = ParseDockerfile(ReadFile(kDockerfile));
  if (stages.empty()) return std::nullopt;
  return stages.back();
}

// An exec-form ENTRYPOINT or CMD (a JSON array, which YAML reads too).
std::vector<std::string> ExecForm(const std::string& args) {
  try {
    return Strings(YAML::Load(args));
  } catch (const YAML::Exception&) {
    return {};
  }
}

// The command line a container runs: `command` replaces the image's ENTRYPOINT (and drops its
// CMD), `args` replaces the CMD.
std::vector<std::string> Argv(const YAML::Node& container) {
  const auto image = FinalStage();
  std::vector<std::string> argv, args;
  if (At(container, {"command"})) {
    argv = Strings(At(container, {"command"}));
  } else if (image) {
    const auto entrypoints = image->Args("ENTRYPOINT");
    if (!entrypoints.empty()) argv = ExecForm(entrypoints.back());
    const auto cmds = image->Args("CMD");
    if (!cmds.empty()) args = ExecForm(cmds.back());
  }
  if (At(container, {"args"})) args = Strings(At(container, {"args"}));
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

// crmbridge's own arguments in `argv`, or nothing when argv does not run crmbridge.
std::vector<std::string> CrmbridgeArgs(const std::vector<std::string>& argv) {
  if (argv.empty() || fs::path(argv[0]).filename() != "crmbridge") return {};
  return {argv.begin() + 1, argv.end()};
}

std::string OptionValue(const std::vector<std::string>& args, const std::string& option) {
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == option && i + 1 < args.size()) return args[i + 1];
    if (args[i].rfind(option + "=", 0) == 0) return args[i].substr(option.size() + 1);
  }
  return "";
}

struct Listen {
  std::string host;
  int port = 0;
};

Listen WorkerListen(const YAML::Node& container) {
  std::string value = OptionValue(CrmbridgeArgs(Argv(container)), "--listen");
  if (value.empty()) value = kDefaultListen;
  const size_t colon = value.rfind(':');
  if (colon == std::string::npos) return {value, 0};
  return {value.substr(0, colon), std::atoi(value.substr(colon + 1).c_str())};
}

// A probe's httpGet port as a number, a named port resolved through the container's ports.
int ProbePort(const YAML::Node& container, const YAML::Node& probe) {
  const std::string value = At(probe, {"httpGet", "port"}).as<std::string>("");
  if (IsNumber(value)) return std::stoi(value);
  const YAML::Node ports = At(container, {"ports"});
  if (!value.empty() && ports.IsSequence())
    for (const YAML::Node& p : ports)
      if (At(p, {"name"}).as<std::string>("") == value) return At(p, {"containerPort"}).as<int>(0);
  return 0;
}

// A securityContext field as the container sees it: its own, else the pod's.
YAML::Node Effective(const YAML::Node& pod_template, const char* field) {
  const YAML::Node own = At(FirstContainer(pod_template), {"securityContext", field});
  if (own) return own;
  return At(pod_template, {"spec", "securityContext", field});
}

YAML::Node WorkerPod() {
  const auto worker = Find("Deployment", kWorkerName);
  return worker ? At(worker->doc, {"spec", "template"}) : Missing();
}

// ---- Tests ----------------------------------------------------------------------------------

TEST(KubernetesManifestsTest, EveryDocumentParsesAndNamesItsApiVersionKindAndName) {
  const std::vector<fs::path> files = ManifestFiles();
  ASSERT_FALSE(files.empty()) << "no *.yaml in " << kManifestDir;
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.filename().string());
    std::vector<YAML::Node> docs;
    try {
      docs = YAML::LoadAllFromFile(file.string());
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << "does not parse: " << e.what();
      continue;
    }
    size_t objects = 0;
    for (const YAML::Node& doc : docs) {
      if (!doc || doc.IsNull()) continue;
      ++objects;
      ASSERT_TRUE(doc.IsMap()) << "a document is not a map";
      EXPECT_TRUE(At(doc, {"apiVersion"}).IsScalar()) << "a document lacks apiVersion";
      EXPECT_TRUE(At(doc, {"kind"}).IsScalar()) << "a document lacks kind";
      EXPECT_TRUE(At(doc, {"metadata", "name"}).IsScalar()) << "a document lacks metadata.name";
    }
    EXPECT_GT(objects, 0u) << "holds no object";
  }
}

TEST(KubernetesManifestsTest, WorkerDeploymentRunsTheWorkerCommand) {
  const YAML::Node pod = WorkerPod();
  ASSERT_TRUE(pod) << "no Deployment " << kWorkerName;
  const std::vector<std::string> args = CrmbridgeArgs(Argv(FirstContainer(pod)));
  ASSERT_FALSE(args.empty()) << "the worker container does not run crmbridge";
  EXPECT_EQ(args[0], "worker");
}

TEST(KubernetesManifestsTest, WorkerListensOnAllInterfacesSoTheKubeletReachesIt) {
  const YAML::Node pod = WorkerPod();
  ASSERT_TRUE(pod) << "no Deployment " << kWorkerName;
  const Listen listen = WorkerListen(FirstContainer(pod));
  EXPECT_EQ(listen.host, "0.0.0.0") << "probes come from outside the pod's loopback";
  EXPECT_GT(listen.port, 0);
}

TEST(KubernetesManifestsTest, WorkerProbesHealthzAndReadyzOnItsListenPort) {
  const YAML::Node pod = WorkerPod();
  ASSERT_TRUE(pod) << "no Deployment " << kWorkerName;
  const YAML::Node container = FirstContainer(pod);
  const int port = WorkerListen(container).port;
  const YAML::Node liveness = At(container, {"livenessProbe"});
  const YAML::Node readiness = At(container, {"readinessProbe"});
  ASSERT_TRUE(At(liveness, {"httpGet"})) << "no livenessProbe httpGet";
  ASSERT_TRUE(At(readiness, {"httpGet"})) << "no readinessProbe httpGet";
  EXPECT_EQ(At(liveness, {"httpGet", "path"}).as<std::string>(""), "/healthz");
  EXPECT_EQ(At(readiness, {"httpGet", "path"}).as<std::string>(""), "/readyz");
  EXPECT_EQ(ProbePort(container, liveness), port) << "liveness probes another port than --listen";
  EXPECT_EQ(ProbePort(container, readiness), port) << "readiness probes another port than --listen";
}

TEST(KubernetesManifestsTest, WorkerRollsOneAtATimeAndLetsRunsInHandFinish) {
  const auto worker = Find("Deployment", kWorkerName);
  ASSERT_TRUE(worker) << "no Deployment " << kWorkerName;
  const YAML::Node rolling = At(worker->doc, {"spec", "strategy", "rollingUpdate"});
  ASSERT_TRUE(rolling) << "no rollingUpdate strategy";
  EXPECT_EQ(At(rolling, {"maxSurge"}).as<std::string>(""), "0");
  EXPECT_EQ(At(rolling, {"maxUnavailable"}).as<std::string>(""), "1");
  EXPECT_GE(
      At(worker->doc, {"spec", "template", "spec", "terminationGracePeriodSeconds"}).as<int>(0),
      300)
      << "SIGTERM waits for the runs in hand; a short grace period cuts them off";
}

TEST(KubernetesManifestsTest, EveryPodRunsAsNonRoot) {
  const auto pods = PodTemplates();
  ASSERT_FALSE(pods.empty());
  for (const auto& [object, pod] : pods) {
    SCOPED_TRACE(object.kind() + " " + object.name());
    EXPECT_TRUE(Effective(pod, "runAsNonRoot").as<bool>(false)) << "runAsNonRoot is not true";
    EXPECT_NE(Effective(pod, "runAsUser").as<int>(0), 0) << "runAsUser is unset or root";
    EXPECT_FALSE(
        At(FirstContainer(pod), {"securityContext", "allowPrivilegeEscalation"}).as<bool>(true))
        << "allowPrivilegeEscalation is not false";
  }
}

TEST(KubernetesManifestsTest, EveryPodTakesTheStateUrlFromASecret) {
  const auto pods = PodTemplates();
  ASSERT_FALSE(pods.empty());
  for (const auto& [object, pod] : pods) {
    SCOPED_TRACE(object.kind() + " " + object.name());
    EXPECT_TRUE(GetsFromSecret(FirstContainer(pod), kStateUrlVar))
        << kStateUrlVar << " does not come from a key of a Secret in " << kManifestDir;
  }
}

TEST(KubernetesManifestsTest, MigrationJobRunsTenantsMigrate) {
  const auto job = Find("Job", kMigrateJobName);
  ASSERT_TRUE(job) << "no Job " << kMigrateJobName;
  const std::vector<std::string> args =
      CrmbridgeArgs(Argv(FirstContainer(At(job->doc, {"spec", "template"}))));
  ASSERT_GE(args.size(), 2u) << "the migration does not run crmbridge with a command";
  EXPECT_EQ(args[0], "tenants");
  EXPECT_EQ(args[1], "migrate");
}

// Tenants are registered by path: the worker must find each file where `tenants add` read it.
TEST(KubernetesManifestsTest, WorkerMountsTheTenantConfigsWhereTheyAreRegisteredFrom) {
  const YAML::Node worker = WorkerPod();
  ASSERT_TRUE(worker) << "no Deployment " << kWorkerName;
  const std::string worker_dir = ConfigMapMountPath(worker, kTenantsConfigMap);
  ASSERT_FALSE(worker_dir.empty()) << "the worker does not mount ConfigMap " << kTenantsConfigMap;

  const std::map<std::string, std::string> configs = TenantConfigs();
  size_t registrations = 0;
  for (const auto& [object, pod] : PodTemplates()) {
    const std::vector<std::string> args = CrmbridgeArgs(Argv(FirstContainer(pod)));
    if (args.size() < 2 || args[0] != "tenants" || args[1] != "add") continue;
    ++registrations;
    SCOPED_TRACE(object.kind() + " " + object.name());
    const fs::path config = OptionValue(args, "--config");
    ASSERT_FALSE(config.empty()) << "tenants add without --config";
    EXPECT_EQ(config.parent_path().lexically_normal().string(), worker_dir);
    EXPECT_EQ(ConfigMapMountPath(pod, kTenantsConfigMap), worker_dir)
        << "the registration reads the configs from elsewhere than the worker";
    EXPECT_TRUE(configs.count(config.filename().string()))
        << "ConfigMap " << kTenantsConfigMap << " has no key " << config.filename();
  }
  EXPECT_GT(registrations, 0u) << "no Job runs crmbridge tenants add";
}

TEST(TenantConfigsTest, EachIsYamlWithSystemsMappingsAndASchedule) {
  const std::map<std::string, std::string> configs = TenantConfigs();
  ASSERT_FALSE(configs.empty()) << "ConfigMap " << kTenantsConfigMap << " holds no tenant config";
  for (const auto& [key, text] : configs) {
    SCOPED_TRACE(key);
    YAML::Node config;
    try {
      config = YAML::Load(text);
    } catch (const YAML::Exception& e) {
      ADD_FAILURE() << "does not parse: " << e.what();
      continue;
    }
    ASSERT_TRUE(config.IsMap());
    const YAML::Node systems = At(config, {"systems"});
    const YAML::Node mappings = At(config, {"mappings"});
    EXPECT_TRUE(systems.IsMap() && systems.size() > 0) << "no systems";
    EXPECT_TRUE(mappings.IsSequence() && mappings.size() > 0) << "no mappings";
    EXPECT_TRUE(At(config, {"schedule", "every"}).IsScalar()) << "no schedule.every";
    EXPECT_FALSE(At(config, {"state"})) << "the worker gives the state, not the tenant config";
  }
}

TEST(TenantConfigsTest, EveryEnvReferenceIsASecretKeyTheWorkerGets) {
  const YAML::Node worker = WorkerPod();
  ASSERT_TRUE(worker) << "no Deployment " << kWorkerName;
  const std::regex reference(R"(\$\{env:([^}]*)\})");
  size_t references = 0;
  for (const auto& [key, text] : TenantConfigs()) {
    for (std::sregex_iterator m(text.begin(), text.end(), reference), end; m != end; ++m) {
      ++references;
      const std::string var = (*m)[1];
      EXPECT_TRUE(GetsFromSecret(FirstContainer(worker), var))
          << key << " reads ${env:" << var << "}, which no Secret key gives the worker";
    }
  }
  EXPECT_GT(references, 0u) << "no tenant config takes its credentials from the environment";
}

TEST(TenantConfigsTest, EveryMappingPathIsAMappingFileOfTheRepository) {
  size_t paths = 0;
  for (const auto& [key, text] : TenantConfigs()) {
    SCOPED_TRACE(key);
    for (const std::string& path : MappingPaths(text)) {
      ++paths;
      ASSERT_EQ(path.rfind(kImageMappingDir, 0), 0u)
          << path << " is not under " << kImageMappingDir << ", where the image has the mappings";
      const fs::path in_repo = kRoot / "mappings" / path.substr(sizeof(kImageMappingDir) - 1);
      EXPECT_TRUE(fs::is_regular_file(in_repo)) << path << ": no " << in_repo;
    }
  }
  EXPECT_GT(paths, 0u);
}

// What `crmbridge tenants add` checks, run on each tenant config as the image holds it (its
// mapping paths pointed at the repository's files): the loader and the mapping compile take it.
TEST(TenantConfigsTest, EachLoadsAsATenantConfigWithItsMappings) {
  const fs::path dir = fs::temp_directory_path() / ("crmbridge-deploy-test-" + std::to_string(getpid()));
  fs::create_directories(dir);
  for (const auto& [key, text] : TenantConfigs()) {
    SCOPED_TRACE(key);
    std::string local = text;
    for (size_t at = local.find(kImageMappingDir); at != std::string::npos;
         at = local.find(kImageMappingDir, at))
      local.replace(at, sizeof(kImageMappingDir) - 1, (kRoot / "mappings").string() + "/");
    const fs::path file = dir / key;
    std::ofstream(file) << local;
    std::vector<std::string> warnings;  // its secrets are the worker's: unset here
    auto config = LoadTenantConfig(file.string(), &warnings);
    ASSERT_TRUE(config.ok()) << config.status().message();
    Status keys = CheckSystemKeysOf(*config);
    EXPECT_TRUE(keys.ok()) << keys.message();
    auto plan = LoadPlanFor(*config);
    EXPECT_TRUE(plan.ok()) << plan.status().message();
  }
  fs::remove_all(dir);
}

// The COPY from the build context that puts each tenant's mapping file into the image.
TEST(DockerImageTest, InstallsEveryMappingFileATenantNames) {
  const auto image = FinalStage();
  ASSERT_TRUE(image) << "no stage in " << kDockerfile;
  std::vector<std::pair<std::string, std::string>> copies;  // source in the context, destination
  for (const std::string& args : image->Args("COPY")) {
    std::istringstream words(args);
    std::vector<std::string> w;
    for (std::string word; words >> word;) w.push_back(word);
    if (w.size() != 2) continue;  // --from=... or several sources: not one folder of the context
    copies.emplace_back(w[0], w[1]);
  }
  for (const auto& [key, text] : TenantConfigs()) {
    SCOPED_TRACE(key);
    for (const std::string& path : MappingPaths(text)) {
      bool installed = false;
      for (const auto& [source, dest] : copies) {
        const std::string dir = dest.back() == '/' ? dest : dest + "/";
        if (path.rfind(dir, 0) != 0) continue;
        installed = installed || fs::is_regular_file(kRoot / source / path.substr(dir.size()));
      }
      EXPECT_TRUE(installed) << "no COPY in the final stage installs " << path;
    }
  }
}

TEST(DockerImageTest, FinalStageRunsAsTheNonRootUserThePodsName) {
  const auto image = FinalStage();
  ASSERT_TRUE(image) << "no stage in " << kDockerfile;
  const std::vector<std::string> users = image->Args("USER");
  ASSERT_FALSE(users.empty()) << "the final stage has no USER: it would run as root";
  const std::string user = users.back().substr(0, users.back().find(':'));
  ASSERT_FALSE(user.empty());
  ASSERT_TRUE(IsNumber(user)) << "USER " << user
                              << " is not numeric: runAsNonRoot cannot verify a name";
  EXPECT_NE(std::stoi(user), 0) << "USER is root";
  for (const auto& [object, pod] : PodTemplates()) {
    SCOPED_TRACE(object.kind() + " " + object.name());
    EXPECT_EQ(Effective(pod, "runAsUser").as<int>(-1), std::stoi(user));
  }
}

TEST(DockerImageTest, BuildsWithTheProjectsSetupScript) {
  const std::vector<Stage> stages = ParseDockerfile(ReadFile(kDockerfile));
  ASSERT_GE(stages.size(), 2u) << "no separate build stage";
  bool runs_setup = false;
  for (size_t i = 0; i + 1 < stages.size(); ++i)
    for (const std::string& run : stages[i].Args("RUN"))
      runs_setup = runs_setup || run.find("scripts/setup.sh") != std::string::npos;
  EXPECT_TRUE(runs_setup) << "no build stage RUNs scripts/setup.sh";
  for (const std::string& run : stages.back().Args("RUN"))
    EXPECT_EQ(run.find("scripts/setup.sh"), std::string::npos) << "the runtime stage builds";
}

// The output of a shell command, line by line.
std::vector<std::string> CommandLines(const std::string& command) {
  std::vector<std::string> lines;
  FILE* out = ::popen(command.c_str(), "r");
  if (out == nullptr) return lines;
  std::string line;
  for (int c; (c = std::fgetc(out)) != EOF;) {
    if (c != '\n') {
      line.push_back(static_cast<char>(c));
    } else {
      lines.push_back(line);
      line.clear();
    }
  }
  if (!line.empty()) lines.push_back(line);
  ::pclose(out);
  return lines;
}

// The runtime stage has each shared library the built program links directly: the Debian package
// that holds it is installed there, or is one that debian:12-slim already has. A library added to
// the link line (the allocator, a client library) and not to the image fails here, not when the
// container starts.
TEST(DockerImageTest, InstallsThePackageOfEachSharedLibraryTheProgramLinks) {
  const std::string program = CRMBRIDGE_PROGRAM;
  if (!fs::exists(program) || std::system("command -v readelf dpkg-query >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "needs the built program, readelf and dpkg-query";
  const auto image = FinalStage();
  ASSERT_TRUE(image) << "no stage in " << kDockerfile;
  std::string installed;
  for (const std::string& run : image->Args("RUN")) installed += " " + run + " ";
  const std::set<std::string> in_base_image = {"libc6", "libstdc++6", "libgcc-s1"};
  const std::vector<std::string> needed = CommandLines(
      "readelf -d '" + program + "' | sed -n 's/.*Shared library: \\[\\(.*\\)\\]/\\1/p'");
  ASSERT_FALSE(needed.empty()) << "readelf found no shared library in " << program;
  for (const std::string& soname : needed) {
    // "libjemalloc2:amd64: /usr/lib/x86_64-linux-gnu/libjemalloc.so.2"; other architectures'
    // copies (lib32...) are not what the program loads.
    std::string package;
    for (const std::string& line : CommandLines("dpkg-query -S '*/" + soname + "' 2>/dev/null"))
      if (line.find("-linux-gnu/") != std::string::npos) package = line.substr(0, line.find(':'));
    ASSERT_FALSE(package.empty()) << "no Debian package holds " << soname;
    if (in_base_image.count(package)) continue;
    EXPECT_NE(installed.find(" " + package + " "), std::string::npos)
        << program << " links " << soname << " from " << package
        << ", which the image's runtime stage does not install";
  }
}

TEST(DockerImageTest, ExposesTheWorkersListenPort) {
  const auto image = FinalStage();
  ASSERT_TRUE(image) << "no stage in " << kDockerfile;
  const YAML::Node pod = WorkerPod();
  ASSERT_TRUE(pod) << "no Deployment " << kWorkerName;
  const std::string port = std::to_string(WorkerListen(FirstContainer(pod)).port);
  bool exposed = false;
  for (const std::string& args : image->Args("EXPOSE")) {
    std::istringstream words(args);
    for (std::string word; words >> word;)
      exposed = exposed || word == port || word == port + "/tcp";
  }
  EXPECT_TRUE(exposed) << "EXPOSE does not name " << port;
}

TEST(DockerImageTest, EveryPodRunsTheSameImage) {
  std::set<std::string> images;
  for (const auto& [object, pod] : PodTemplates())
    images.insert(At(FirstContainer(pod), {"image"}).as<std::string>(""));
  ASSERT_FALSE(images.empty());
  EXPECT_EQ(images.size(), 1u) << "the migration must run the version the workers will";
}

}  // namespace
}  // namespace crmbridge
