// Placeholders and their incremental restoration.
#include "router/redact.h"

namespace enclave::router {

std::string placeholder_prefix(std::string_view type) {
  std::string p = "[";
  for (char c : type) {
    if (c >= 'a' && c <= 'z') {
      p += static_cast<char>(c - 'a' + 'A');
    } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
      p += c;
    } else {
      p += '_';
    }
  }
  p += '_';
  return p;
}

std::string Redactor::redact(std::string_view text, const std::vector<privacy::Finding>& findings) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (const privacy::Finding& f : findings) {
    if (f.start < pos || f.end > text.size() || f.start >= f.end) continue;  // defensive
    out.append(text.substr(pos, f.start - pos));
    std::string value(text.substr(f.start, f.end - f.start));
    auto it = by_value_.find(value);
    if (it == by_value_.end()) {
      std::string prefix = placeholder_prefix(f.type);
      std::string ph = prefix + std::to_string(++next_index_[prefix]) + "]";
      max_len_ = std::max(max_len_, ph.size());
      by_placeholder_.emplace(ph, value);
      it = by_value_.emplace(std::move(value), std::move(ph)).first;
    }
    out += it->second;
    ++replaced_;
    pos = f.end;
  }
  out.append(text.substr(pos));
  return out;
}

namespace {

bool placeholder_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

// Releases text up to the first '[' that may still open a placeholder (all of it when final).
std::string Restorer::drain(bool final) {
  const auto& table = redactor_->table();
  std::string out;
  size_t i = 0;
  const size_t n = pending_.size();
  while (i < n) {
    size_t open = pending_.find('[', i);
    if (open == std::string::npos) {
      out.append(pending_, i, std::string::npos);
      i = n;
      break;
    }
    out.append(pending_, i, open - i);
    size_t j = open + 1;
    while (j < n && placeholder_char(pending_[j])) ++j;
    if (j < n && pending_[j] == ']') {
      auto it = table.find(pending_.substr(open, j + 1 - open));
      if (it != table.end()) {
        out += it->second;
        i = j + 1;
        continue;
      }
    } else if (j == n && !final && j - open < redactor_->max_placeholder_bytes()) {
      // "[EMA" at the end: may complete in the next chunk.
      i = open;
      break;
    }
    out += '[';
    i = open + 1;
  }
  pending_.erase(0, i);
  return out;
}

std::string Restorer::push(std::string_view text) {
  if (redactor_ == nullptr || redactor_->table().empty()) return std::string(text);
  pending_.append(text);
  return drain(false);
}

std::string Restorer::flush() {
  if (redactor_ == nullptr || redactor_->table().empty()) return {};
  std::string out = drain(true);
  out += pending_;
  pending_.clear();
  return out;
}

std::string restore_all(const Redactor& redactor, std::string_view text) {
  Restorer r(&redactor);
  std::string out = r.push(text);
  out += r.flush();
  return out;
}

}  // namespace enclave::router
