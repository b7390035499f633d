// YAML with positions: loading YAML files and reporting problems as "file:line:column: message".
//
// yaml-cpp's Mark is 0-based; SourcePos is 1-based, as editors show it. yaml-cpp accepts some
// malformed input (an unterminated quoted scalar runs to the end of the file), so callers validate
// shapes after parsing and report each problem through Diagnostics, all at once.
//
// Diagnostics is not thread-safe; SourcePos is a value.
#pragma once

#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "src/core/status.h"

namespace crmbridge {

struct SourcePos {
  std::string file;
  int line = 0;    // 1-based; 0 = unknown
  int column = 0;  // 1-based; 0 = unknown
  std::string ToString() const;  // "file:line:col", or "file" when the position is unknown
};

// Position of `node` in `file` (yaml-cpp Mark + 1); the empty document of a file with no content
// is at 1:1.
SourcePos PosOf(const YAML::Node& node, const std::string& file);

struct Diagnostic {
  SourcePos pos;
  std::string message;
  std::string hint;  // optional: how to fix it
  bool warning = false;  // reported, but the file is still taken
  // "file:line:col: error: message (hint: ...)" ("warning:" for a warning), on one line: line
  // breaks and control characters in the message or hint are escaped (\n, \x01).
  std::string ToString() const;
};

class Diagnostics {
 public:
  void Error(const SourcePos& pos, std::string message, std::string hint = "");
  void Warning(const SourcePos& pos, std::string message, std::string hint = "");
  // No error (warnings do not count).
  bool empty() const { return items_.empty(); }
  const std::vector<Diagnostic>& items() const { return items_; }
  const std::vector<Diagnostic>& warnings() const { return warnings_; }
  // Every error, one per line.
  std::string ToString() const;
  // OK when there is no error, else kInvalidArgument carrying ToString().
  Status ToStatus() const;

 private:
  std::vector<Diagnostic> items_;
  std::vector<Diagnostic> warnings_;
};

// Parses a YAML file. kNotFound if it cannot be read; kInvalidArgument with "file:line:col:
// message" when yaml-cpp rejects it.
Result<YAML::Node> LoadYamlFile(const std::string& path);
// Parses YAML text; `name` is used as the file name in positions.
Result<YAML::Node> ParseYaml(const std::string& text, const std::string& name);

}  // namespace crmbridge
