#include "ref_data.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <fstream>
#include <sstream>

namespace enclave::model::testing {

namespace json = boost::json;

std::string fixture_path(const std::string& name) {
  return std::string(ENCLAVE_FIXTURES_DIR) + "/models/" + name;
}

namespace {
std::vector<int32_t> ints(const json::value& v) {
  std::vector<int32_t> out;
  for (const json::value& x : v.as_array())
    out.push_back(static_cast<int32_t>(x.to_number<int64_t>()));
  return out;
}
std::vector<float> floats(const json::value& v) {
  std::vector<float> out;
  for (const json::value& x : v.as_array())
    out.push_back(static_cast<float>(x.to_number<double>()));
  return out;
}
}  // namespace

RefFile load_ref(const std::string& ref_name) {
  std::ifstream in(fixture_path(ref_name));
  EXPECT_TRUE(in.good()) << "cannot open " << fixture_path(ref_name);
  std::stringstream ss;
  ss << in.rdbuf();
  const json::value root = json::parse(ss.str());
  const json::object& o = root.as_object();
  RefFile r;
  r.model = std::string(o.at("model").as_string());
  r.n_vocab = static_cast<int32_t>(o.at("n_vocab").to_number<int64_t>());
  for (const json::value& pv : o.at("prompts").as_array()) {
    const json::object& p = pv.as_object();
    RefPrompt rp;
    rp.tokens = ints(p.at("tokens"));
    rp.logits = floats(p.at("logits"));
    const json::object& g = p.at("greedy").as_object();
    rp.greedy = ints(g.at("tokens"));
    rp.margins = floats(g.at("margins"));
    for (const json::value& s : g.at("step_logits").as_array()) rp.step_logits.push_back(floats(s));
    r.prompts.push_back(std::move(rp));
  }
  if (const json::value* tp = o.if_contains("text_prompts")) {
    for (const json::value& tv : tp->as_array()) {
      const json::object& t = tv.as_object();
      RefTextPrompt rt;
      rt.text = std::string(t.at("text").as_string());
      rt.prompt_tokens = ints(t.at("prompt_tokens"));
      rt.continuation_tokens = ints(t.at("continuation_tokens"));
      rt.continuation_text = std::string(t.at("continuation_text").as_string());
      r.text_prompts.push_back(std::move(rt));
    }
  }
  return r;
}

Diff diff(const float* got, const std::vector<float>& ref) {
  Diff d;
  double mean = 0.0;
  for (float x : ref) mean += x;
  mean /= static_cast<double>(ref.size());
  double var = 0.0, sq = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    var += (ref[i] - mean) * (ref[i] - mean);
    const double e = static_cast<double>(got[i]) - ref[i];
    sq += e * e;
    d.max_abs = std::max(d.max_abs, static_cast<float>(std::fabs(e)));
  }
  d.ref_std = static_cast<float>(std::sqrt(var / static_cast<double>(ref.size())));
  d.rms = static_cast<float>(std::sqrt(sq / static_cast<double>(ref.size())));
  return d;
}

int32_t argmax(const float* x, int32_t n) {
  int32_t best = 0;
  for (int32_t i = 1; i < n; ++i) {
    if (x[i] > x[best]) best = i;  // ties: lower id wins, as in the reference
  }
  return best;
}

}  // namespace enclave::model::testing
