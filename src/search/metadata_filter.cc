#include "search/metadata_filter.h"

#include <nlohmann/json.hpp>

#include <vector>

namespace kb {

using nlohmann::json;

struct MetadataFilter::Impl {
  struct Condition {
    std::string key;
    std::vector<json> allowed;
  };
  std::vector<Condition> conditions;
};

MetadataFilter::MetadataFilter() : impl_(std::make_unique<Impl>()) {}
MetadataFilter::~MetadataFilter() = default;

namespace {
bool IsScalar(const json& v) {
  return v.is_string() || v.is_number() || v.is_boolean() || v.is_null();
}

bool ScalarEquals(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}
}  // namespace

Result<std::shared_ptr<const MetadataFilter>> MetadataFilter::Parse(const std::string& text) {
  std::shared_ptr<MetadataFilter> f(new MetadataFilter());
  if (text.empty()) return std::shared_ptr<const MetadataFilter>(f);
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::InvalidArgument("filters must be a JSON object of metadata keys");
  }
  for (auto it = j.begin(); it != j.end(); ++it) {
    Impl::Condition c;
    c.key = it.key();
    const json& v = it.value();
    if (IsScalar(v)) {
      c.allowed.push_back(v);
    } else if (v.is_object() && v.size() == 1 && v.contains("$in") && v["$in"].is_array()) {
      for (const json& x : v["$in"]) {
        if (!IsScalar(x)) {
          return Status::InvalidArgument("filter '" + c.key + "': $in takes a list of scalars");
        }
        c.allowed.push_back(x);
      }
    } else {
      return Status::InvalidArgument("filter '" + c.key +
                                     "' must be a scalar or {\"$in\": [values]}");
    }
    f->impl_->conditions.push_back(std::move(c));
  }
  f->canonical_ = j.dump();  // nlohmann orders object keys, so this is canonical
  return std::shared_ptr<const MetadataFilter>(f);
}

bool MetadataFilter::empty() const { return impl_->conditions.empty(); }

bool MetadataFilter::Matches(const std::string& metadata_json) const {
  if (impl_->conditions.empty()) return true;
  json m = json::parse(metadata_json, nullptr, false);
  if (m.is_discarded() || !m.is_object()) return false;
  for (const auto& c : impl_->conditions) {
    auto it = m.find(c.key);
    if (it == m.end()) return false;
    bool any = false;
    for (const json& a : c.allowed) {
      if (ScalarEquals(*it, a)) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  return true;
}

}  // namespace kb
