// Small endpoints (models, embeddings, health, ready, metrics) and the route table.
#include <chrono>

#include "api/codec.h"
#include "server/generation.h"

namespace enclave::server {
namespace {

api::ModelCard card_for(const Backend& b, int64_t created) {
  api::ModelCard c;
  c.id = b.model_id();
  c.created = created;
  c.is_demo = b.info().is_demo;
  c.context_length = b.info().n_ctx;
  return c;
}

void handle_models(Services& services, const ExchangePtr& ex) {
  std::vector<api::ModelCard> cards;
  if (auto b = services.backend()) cards.push_back(card_for(*b, services.started_unix_s));
  respond_json(ex, 200, api::write_models(cards));
}

// Embeddings run on the blocking pool: Engine::embed waits for the engine thread.
void handle_embeddings(Services& services, const ExchangePtr& ex) {
  std::string param;
  Result<api::EmbeddingRequest> parsed =
      api::parse_embedding_request(ex->request().body, services.limits, &param);
  if (!parsed) return respond_error(ex, api::map_error(parsed.error(), param));
  ex->note({.model = parsed->model});
  Result<std::shared_ptr<Backend>> backend = resolve_model(services, parsed->model);
  if (!backend) return respond_error(ex, api::map_error(backend.error(), "model"));
  ex->note({.model = (*backend)->model_id()});
  auto req = std::make_shared<api::EmbeddingRequest>(std::move(*parsed));
  std::shared_ptr<Backend> b = *backend;
  services.run_blocking([&services, ex, req, b] {
    std::vector<std::vector<float>> vectors;
    int32_t n_tokens = 0;
    int32_t n_ctx = b->info().n_ctx;
    for (size_t i = 0; i < req->inputs.size(); ++i) {
      if (ex->cancelled()) return respond_error(ex, api::request_timeout());
      std::string param = req->inputs.size() == 1 ? "input" : "input[" + std::to_string(i) + "]";
      Result<std::vector<int32_t>> tokens = b->tokenize(req->inputs[i]);
      if (!tokens) {
        return respond_error(ex, api::map_error(tokens.error(), param, ex->request().request_id));
      }
      int32_t n = static_cast<int32_t>(tokens->size());
      if (n_ctx > 0 && n > n_ctx) {
        return respond_error(
            ex,
            api::map_error(Error(ErrorCode::kOutOfRange,
                                 "This model's maximum context length is " + std::to_string(n_ctx) +
                                     " tokens, but input " + std::to_string(i) + " has " +
                                     std::to_string(n) + " tokens; shorten it."),
                           param));
      }
      Result<std::vector<float>> v = b->embed(*tokens);
      if (!v) return respond_error(ex, api::map_error(v.error(), param, ex->request().request_id));
      n_tokens += n;
      vectors.push_back(std::move(*v));
    }
    services.metrics.add_tokens(n_tokens, 0);
    ex->note({.prompt_tokens = static_cast<uint32_t>(n_tokens), .completion_tokens = 0u});
    respond_json(ex, 200, api::write_embeddings(req->model, vectors, req->encoding, n_tokens));
  });
}

void handle_health(const ExchangePtr& ex) {
  respond_json(ex, 200, R"({"status":"ok"})");
}

void handle_ready(Services& services, const ExchangePtr& ex) {
  if (services.backend()) {
    respond_json(ex, 200, R"({"status":"ready"})");
  } else {
    HttpResponse r;
    r.status = 503;
    r.body = R"({"status":"loading"})";
    r.headers.emplace_back("Retry-After", "1");
    ex->respond(std::move(r));
  }
}

void handle_metrics(Services& services, const ExchangePtr& ex) {
  std::shared_ptr<Backend> b = services.backend();
  engine::EngineStats stats;
  if (b) stats = b->stats();
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = services.metrics.render(b ? &stats : nullptr, b != nullptr);
  ex->respond(std::move(r));
}

// DELETE /v1/admin/tenants/{name}: crypto-shredding erase (the store audits it as an admin event).
void handle_erase_tenant(Services& services, RequestContext& ctx, const ExchangePtr& ex) {
  static constexpr std::string_view kPrefix = "/admin/tenants/";
  std::string tenant = ctx.request.path.substr(kPrefix.size());
  if (!services.erase_tenant) {
    return respond_error(ex, api::map_error(Error(ErrorCode::kNotFound,
                                                  "Tenant administration is not enabled on this "
                                                  "server.")));
  }
  std::string actor = "api_key:" + ctx.key_name;
  services.run_blocking([&services, ex, tenant, actor] {
    Result<std::string> body = services.erase_tenant(tenant, actor);
    if (!body) return respond_error(ex, api::map_error(body.error(), "tenant"));
    respond_json(ex, 200, std::move(*body));
  });
}

}  // namespace

void register_api_routes(Router& router, Services& services) {
  Services* s = &services;
  router.add_route({"POST", "/chat/completions", "chat_completions", Scope::kChat,
                    [s](RequestContext& ctx, const ExchangePtr& ex) {
                      bool gw = static_cast<bool>(s->chat_gateway);
                      ExchangePtr e = s->auditor ? s->auditor->wrap(ex, ctx, gw) : ex;
                      if (gw) return s->chat_gateway(ctx, e);
                      handle_chat(*s, e);
                    }});
  router.add_route({"POST", "/completions", "completions", Scope::kChat,
                    [s](RequestContext& ctx, const ExchangePtr& ex) {
                      bool gw = static_cast<bool>(s->completion_gateway);
                      ExchangePtr e = s->auditor ? s->auditor->wrap(ex, ctx, gw) : ex;
                      if (gw) return s->completion_gateway(ctx, e);
                      handle_completion(*s, e);
                    }});
  router.add_route({"POST", "/embeddings", "embeddings", Scope::kEmbeddings,
                    [s](RequestContext& ctx, const ExchangePtr& ex) {
                      handle_embeddings(*s, s->auditor ? s->auditor->wrap(ex, ctx, false) : ex);
                    }});
  router.add_route({"GET", "/models", "models", Scope::kAnyKey,
                    [s](RequestContext&, const ExchangePtr& ex) { handle_models(*s, ex); }});
  router.add_route({"GET", "/health", "health", Scope::kNone,
                    [](RequestContext&, const ExchangePtr& ex) { handle_health(ex); }});
  router.add_route({"GET", "/ready", "ready", Scope::kNone,
                    [s](RequestContext&, const ExchangePtr& ex) { handle_ready(*s, ex); }});
  router.add_route({"GET", "/metrics", "metrics", s->metrics_public ? Scope::kNone : Scope::kAdmin,
                    [s](RequestContext&, const ExchangePtr& ex) { handle_metrics(*s, ex); }});
  router.add_route(
      {"DELETE", "/admin/tenants/", "admin_tenants", Scope::kAdmin,
       [s](RequestContext& ctx, const ExchangePtr& ex) { handle_erase_tenant(*s, ctx, ex); },
       /*prefix=*/true});
}

}  // namespace enclave::server
