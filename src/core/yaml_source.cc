#include "src/core/yaml_source.h"

#include <fstream>
#include <sstream>

namespace crmbridge {

std::string SourcePos::ToString() const {
  if (line <= 0) return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

SourcePos PosOf(const YAML::Node& node, const std::string& file) {
  SourcePos pos;
  pos.file = file;
  const YAML::Mark mark = node.Mark();
  // yaml-cpp counts from 0 and reports -1 for nodes it built itself.
  if (mark.line >= 0) {
    pos.line = mark.line + 1;
    pos.column = mark.column + 1;
  }
  return pos;
}

std::string Diagnostic::ToString() const {
  std::string out = pos.ToString() + ": error: " + message;
  if (!hint.empty()) out += " (hint: " + hint + ")";
  return out;
}

void Diagnostics::Error(const SourcePos& pos, std::string message, std::string hint) {
  items_.push_back(Diagnostic{pos, std::move(message), std::move(hint)});
}

std::string Diagnostics::ToString() const {
  std::string out;
  for (const Diagnostic& d : items_) {
    if (!out.empty()) out += "\n";
    out += d.ToString();
  }
  return out;
}

Status Diagnostics::ToStatus() const {
  if (items_.empty()) return Status::Ok();
  return Status(StatusCode::kInvalidArgument, ToString());
}

Result<YAML::Node> ParseYaml(const std::string& text, const std::string& name) {
  try {
    return YAML::Load(text);
  } catch (const YAML::Exception& e) {
    SourcePos pos;
    pos.file = name;
    if (e.mark.line >= 0) {
      pos.line = e.mark.line + 1;
      pos.column = e.mark.column + 1;
    }
    Diagnostic d{pos, "not valid YAML: " + e.msg, ""};
    return Status(StatusCode::kInvalidArgument, d.ToString());
  }
}

Result<YAML::Node> LoadYamlFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(StatusCode::kNotFound, path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  return ParseYaml(text.str(), path);
}

}  // namespace crmbridge
