// `enclave tenant create|list|erase|set`: tenants, their data keys and erasure by
// crypto-shredding. Every change is recorded in the audit log. The master key is resolved as serve
// does (data_protection_access.h).
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "audit/audit_log.h"
#include "cli/commands.h"
#include "cli/data_protection_access.h"
#include "crypto/keystore.h"
#include "crypto/passphrase.h"
#include "store/store.h"

namespace enclave::cli {
namespace {
namespace fs = std::filesystem;

struct TenantArgs {
  std::string data_dir = "data";
  std::string name;
  bool history = false;
  uint32_t retention_days = 0;
};

int run_create(const TenantArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  auto st = o->db->create_tenant(
      a.name, {.history_enabled = a.history, .retention_days = a.retention_days});
  if (!st) return fail(st.error());
  std::printf("tenant '%s' created (history %s, retention %s)\n", a.name.c_str(),
              a.history ? "on" : "off",
              a.retention_days ? (std::to_string(a.retention_days) + " days").c_str() : "none");
  return 0;
}

int run_set(const TenantArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  auto st = o->db->update_tenant(
      a.name, {.history_enabled = a.history, .retention_days = a.retention_days});
  if (!st) return fail(st.error());
  std::printf("tenant '%s' updated\n", a.name.c_str());
  return 0;
}

int run_list(const TenantArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  auto tenants = o->db->list_tenants();
  if (!tenants) return fail(tenants.error());
  for (const auto& t : *tenants) {
    std::printf("%-24s history=%-3s retention_days=%u key=%s\n", t.name.c_str(),
                t.settings.history_enabled ? "on" : "off", t.settings.retention_days,
                o->keys->has_tenant_key(t.name) ? "present" : "MISSING");
  }
  return 0;
}

int run_erase(const TenantArgs& a) {
  auto o = open_data_protection(a.data_dir);
  if (!o) return fail(o.error());
  auto r = o->db->erase_tenant(a.name, cli_actor());
  if (!r) return fail(r.error());
  std::printf(
      "tenant '%s' erased: data key %s; removed %lld messages, %lld usage records, "
      "%lld API keys. Copies and backups of the database can no longer be decrypted.\n",
      a.name.c_str(), r->key_destroyed ? "destroyed" : "already gone",
      static_cast<long long>(r->messages_deleted), static_cast<long long>(r->usage_deleted),
      static_cast<long long>(r->api_keys_deleted));
  return 0;
}

}  // namespace

void register_tenant(CLI::App& app, int& exit_code) {
  auto args = std::make_shared<TenantArgs>();
  auto* tenant = app.add_subcommand("tenant", "Tenants, their data keys and erasure");
  tenant->require_subcommand(1);

  auto* create = tenant->add_subcommand("create", "Create a tenant and its data key");
  create->add_option("NAME", args->name, "Tenant name (a-z, 0-9, '-', '_')")->required();
  create->add_flag("--history", args->history, "Store conversation history (opt-in)");
  create->add_option("--retention-days", args->retention_days, "Delete history after N days");
  create->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  create->callback([args, &exit_code] { exit_code = run_create(*args); });

  auto* set = tenant->add_subcommand("set", "Change a tenant's history and retention settings");
  set->add_option("NAME", args->name, "Tenant name")->required();
  set->add_flag("--history", args->history, "Store conversation history (omit to turn off)");
  set->add_option("--retention-days", args->retention_days,
                  "Delete history after N days (0=never)");
  set->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  set->callback([args, &exit_code] { exit_code = run_set(*args); });

  auto* list = tenant->add_subcommand("list", "List tenants");
  list->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  list->callback([args, &exit_code] { exit_code = run_list(*args); });

  auto* erase = tenant->add_subcommand(
      "erase",
      "Destroy the tenant's data key (unrecoverable, also in backups) and delete its rows");
  erase->add_option("NAME", args->name, "Tenant name")->required();
  erase->add_option("--data-dir", args->data_dir, "Data directory")->capture_default_str();
  erase->callback([args, &exit_code] { exit_code = run_erase(*args); });
  for (CLI::App* sub : {create, set, list, erase}) sub->footer(kMasterKeyHelp);
}

}  // namespace enclave::cli
