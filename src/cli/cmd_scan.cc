// `enclave scan`: run the sensitivity scanner over a file or stdin and print what it found
// (type, span, level; never the matched text unless --show-values).
#include <boost/json.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>

#include "cli/commands.h"
#include "privacy/scanner.h"

namespace enclave::cli {

namespace {

Result<std::string> read_input(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(ErrorCode::kNotFound, "cannot open '" + path + "'; check the path");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

boost::json::object finding_json(const privacy::Finding& f, std::string_view text, bool values,
                                 bool bytes) {
  boost::json::object o;
  o["type"] = f.type;
  o["start"] = f.cp_start;
  o["end"] = f.cp_end;
  o["level"] = privacy::level_name(f.level);
  if (bytes) {
    o["byte_start"] = f.start;
    o["byte_end"] = f.end;
  }
  if (values) o["value"] = std::string(text.substr(f.start, f.end - f.start));
  return o;
}

// One JSON object per line with a "text" field -> one result line per input line.
int scan_jsonl(const privacy::SensitivityScanner& scanner, const std::string& input, bool values) {
  std::istringstream lines(input);
  std::string line;
  bool any_error = false;
  size_t line_no = 0;
  while (std::getline(lines, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    boost::json::object out;
    boost::system::error_code ec;
    const boost::json::value v = boost::json::parse(line, ec);
    const boost::json::string* text = nullptr;
    if (!ec && v.is_object()) {
      if (const auto* t = v.as_object().if_contains("text"); t && t->is_string()) {
        text = &t->as_string();
      }
    }
    if (ec) {
      out["error"] = "line " + std::to_string(line_no) + ": not valid JSON (" + ec.message() + ")";
    } else if (!text) {
      out["error"] =
          "line " + std::to_string(line_no) + ": expected an object with a string \"text\"";
    } else {
      const std::string_view sv(text->data(), text->size());
      auto found = scanner.scan(sv);
      if (!found) {
        out["error"] = "line " + std::to_string(line_no) + ": " + found.error().message;
      } else {
        boost::json::array arr;
        for (const auto& f : *found) arr.push_back(finding_json(f, sv, values, false));
        out["findings"] = std::move(arr);
      }
    }
    if (out.contains("error")) any_error = true;
    std::printf("%s\n", boost::json::serialize(out).c_str());
  }
  return any_error ? 1 : 0;
}

}  // namespace

void register_scan(CLI::App& app, int& exit_code) {
  auto* cmd = app.add_subcommand("scan", "Find sensitive data in text (test scanner rules)");
  struct Opts {
    std::string input = "-";
    std::string rules;
    bool json = false;
    bool jsonl = false;
    bool show_values = false;
  };
  auto opts = std::make_shared<Opts>();
  cmd->add_option("input", opts->input, "Text file to scan ('-' or omitted: stdin)");
  cmd->add_option("--rules", opts->rules, "YAML rules file (builtin overrides, operator terms)");
  auto* json = cmd->add_flag("--json", opts->json, "Print one JSON object with all findings");
  cmd->add_flag("--jsonl", opts->jsonl,
                "Input is JSON lines with a \"text\" field; print one result line per input")
      ->excludes(json);
  cmd->add_flag("--show-values", opts->show_values,
                "Also print the matched text (sensitive! for testing rules only)");
  cmd->callback([opts, &exit_code] {
    privacy::ScanRules rules;
    if (!opts->rules.empty()) {
      auto r = privacy::load_rules_yaml(opts->rules);
      if (!r) {
        std::fprintf(stderr, "error: %s\n", r.error().message.c_str());
        exit_code = r.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
        return;
      }
      rules = std::move(*r);
    }
    auto scanner = privacy::SensitivityScanner::create(rules);
    if (!scanner) {
      std::fprintf(stderr, "error: %s\n", scanner.error().message.c_str());
      exit_code = scanner.error().code == ErrorCode::kInvalidArgument ? 2 : 1;
      return;
    }
    auto input = read_input(opts->input);
    if (!input) {
      std::fprintf(stderr, "error: %s\n", input.error().message.c_str());
      exit_code = 1;
      return;
    }
    if (opts->jsonl) {
      exit_code = scan_jsonl(**scanner, *input, opts->show_values);
      return;
    }
    auto found = (*scanner)->scan(*input);
    if (!found) {
      std::fprintf(stderr, "error: %s\n", found.error().message.c_str());
      exit_code = 1;
      return;
    }
    const std::string_view text(*input);
    if (opts->json) {
      boost::json::object o;
      boost::json::array arr;
      for (const auto& f : *found) arr.push_back(finding_json(f, text, opts->show_values, true));
      o["findings"] = std::move(arr);
      o["max_level"] = privacy::level_name(privacy::max_level(*found));
      std::printf("%s\n", boost::json::serialize(o).c_str());
    } else {
      std::printf("%-16s %-13s %-21s %-21s%s\n", "TYPE", "LEVEL", "BYTES", "CHARS",
                  opts->show_values ? " VALUE" : "");
      for (const auto& f : *found) {
        const std::string bytes = std::to_string(f.start) + "-" + std::to_string(f.end);
        const std::string chars = std::to_string(f.cp_start) + "-" + std::to_string(f.cp_end);
        std::string value;
        if (opts->show_values) {
          value = " " + std::string(text.substr(f.start, f.end - f.start));
          for (char& c : value) c = (c == '\n' || c == '\r') ? ' ' : c;
        }
        std::printf("%-16s %-13s %-21s %-21s%s\n", f.type.c_str(), privacy::level_name(f.level),
                    bytes.c_str(), chars.c_str(), value.c_str());
      }
      std::printf("%zu finding(s), max level: %s\n", found->size(),
                  privacy::level_name(privacy::max_level(*found)));
    }
    exit_code = 0;
  });
}

}  // namespace enclave::cli
