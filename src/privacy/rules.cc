// Rules file adapter: YAML (yaml-cpp, exceptions caught here) -> ScanRules. Errors name the
// offending key path, never the keyword or regex text (operator terms can be confidential).
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <sstream>

#include "privacy/scanner.h"

namespace enclave::privacy {

namespace {

Error rules_error(const std::string& where, const std::string& what) {
  return make_error(ErrorCode::kInvalidArgument, "scan rules: " + where + ": " + what);
}

Result<Level> level_of(const YAML::Node& node, const std::string& where) {
  if (!node.IsScalar()) return rules_error(where, "level must be a string");
  auto level = parse_level(node.as<std::string>());
  if (!level) return rules_error(where, "level must be public, internal, confidential or secret");
  return *level;
}

Result<std::vector<std::string>> string_list(const YAML::Node& node, const std::string& where) {
  std::vector<std::string> out;
  if (!node) return out;
  if (node.IsScalar()) {
    out.push_back(node.as<std::string>());
    return out;
  }
  if (!node.IsSequence()) return rules_error(where, "must be a list of strings");
  for (size_t i = 0; i < node.size(); ++i) {
    if (!node[i].IsScalar()) {
      return rules_error(where + "[" + std::to_string(i) + "]", "must be a string");
    }
    out.push_back(node[i].as<std::string>());
  }
  return out;
}

Result<ScanRules> parse_node(const YAML::Node& root) {
  ScanRules rules;
  if (!root || root.IsNull()) return rules;
  if (!root.IsMap()) return rules_error("top level", "must be a mapping with builtins/terms");
  for (const auto& kv : root) {
    const std::string key = kv.first.as<std::string>();
    if (key != "builtins" && key != "terms") {
      return rules_error("top level", "unknown key '" + key + "' (expected builtins, terms)");
    }
  }
  if (const YAML::Node b = root["builtins"]; b && !b.IsNull()) {
    if (!b.IsMap()) return rules_error("builtins", "must be a mapping of detector name to rule");
    for (const auto& kv : b) {
      const std::string name = kv.first.as<std::string>();
      const std::string where = "builtins." + name;
      if (!default_level(name)) return rules_error(where, "unknown builtin detector");
      BuiltinRule rule;
      const YAML::Node v = kv.second;
      if (v.IsScalar()) {  // shorthand: `email: false` or `email: secret`
        const std::string s = v.as<std::string>();
        if (s == "true" || s == "false") {
          rule.enabled = s == "true";
        } else {
          ENCLAVE_ASSIGN_OR_RETURN(rule.level, level_of(v, where));
        }
      } else if (v.IsMap()) {
        for (const auto& f : v) {
          const std::string fk = f.first.as<std::string>();
          if (fk == "enabled") {
            rule.enabled = f.second.as<bool>();
          } else if (fk == "level") {
            ENCLAVE_ASSIGN_OR_RETURN(rule.level, level_of(f.second, where + ".level"));
          } else {
            return rules_error(where, "unknown key '" + fk + "' (expected enabled, level)");
          }
        }
      } else {
        return rules_error(where, "must be true/false, a level, or {enabled, level}");
      }
      rules.builtins[name] = rule;
    }
  }
  if (const YAML::Node t = root["terms"]; t && !t.IsNull()) {
    if (!t.IsSequence()) return rules_error("terms", "must be a list");
    for (size_t i = 0; i < t.size(); ++i) {
      const std::string where = "terms[" + std::to_string(i) + "]";
      const YAML::Node n = t[i];
      if (!n.IsMap()) return rules_error(where, "must be a mapping");
      TermRule term;
      for (const auto& f : n) {
        const std::string fk = f.first.as<std::string>();
        if (fk != "category" && fk != "level" && fk != "keywords" && fk != "regexes") {
          return rules_error(
              where, "unknown key '" + fk + "' (expected category, level, keywords, regexes)");
        }
      }
      if (!n["category"] || !n["category"].IsScalar()) {
        return rules_error(where, "needs a category name");
      }
      term.category = n["category"].as<std::string>();
      if (n["level"]) {
        ENCLAVE_ASSIGN_OR_RETURN(term.level, level_of(n["level"], where + ".level"));
      }
      ENCLAVE_ASSIGN_OR_RETURN(term.keywords, string_list(n["keywords"], where + ".keywords"));
      ENCLAVE_ASSIGN_OR_RETURN(term.regexes, string_list(n["regexes"], where + ".regexes"));
      if (term.keywords.empty() && term.regexes.empty()) {
        return rules_error(where, "needs at least one keyword or regex");
      }
      rules.terms.push_back(std::move(term));
    }
  }
  return rules;
}

}  // namespace

Result<ScanRules> parse_rules_yaml(std::string_view yaml) {
  try {
    return parse_node(YAML::Load(std::string(yaml)));
  } catch (const YAML::Exception& e) {
    // Mark (line/column) only: the message could echo file content.
    return make_error(ErrorCode::kInvalidArgument,
                      "scan rules: invalid YAML at line " + std::to_string(e.mark.line + 1) +
                          ", column " + std::to_string(e.mark.column + 1));
  }
}

Result<ScanRules> load_rules_yaml(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return make_error(ErrorCode::kNotFound,
                      "scan rules: cannot open '" + path + "'; check the --rules path");
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  auto rules = parse_rules_yaml(ss.str());
  if (!rules) rules.error().message += " (in " + path + ")";
  return rules;
}

}  // namespace enclave::privacy
