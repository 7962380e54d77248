// Direct JSON serialization of a request entry's members: the bytes boost::json::serialize
// writes for the same object (member order, string escapes, number format), without building
// the object. The writer formats one per request, so this is on the audit writer's hot path.
#pragma once

#include <string>
#include <string_view>

#include "audit/audit_log.h"

namespace enclave::audit {

// Appends `text` as a JSON string (quoted; escapes as boost::json::serialize writes them).
void append_json_string(std::string& out, std::string_view text);

// Appends the request's members, without braces: "request_id":"...",...,"http_status":N.
void append_request_fields(std::string& out, const RequestAudit& record);

}  // namespace enclave::audit
