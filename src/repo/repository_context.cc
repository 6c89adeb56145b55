// Reading and writing sealed objects with errors that name the object.
#include "repo/repository_context.h"

#include "repo/repository_format.h"
#include "repo/sealed_box.h"

namespace kb::repo {

Result<std::string> RepoContext::Get(std::string_view key) const { return store->Get(key); }

Result<std::string> RepoContext::ReadSealed(std::string_view key, std::string_view aad) const {
  KB_ASSIGN_OR_RETURN(std::string box, store->Get(key));
  auto plain = OpenCompressed(data_key(), aad, box, kMaxMetadataPlaintext);
  if (!plain.ok()) return Status::Corruption(std::string(key) + ": " + plain.status().message());
  return std::move(plain).value();
}

Result<int64_t> RepoContext::WriteSealed(std::string_view key, std::string_view aad,
                                         std::string_view plaintext) const {
  std::string box = SealCompressed(data_key(), aad, plaintext, params.compression_level);
  KB_RETURN_IF_ERROR(store->Put(key, box));
  return static_cast<int64_t>(box.size());
}

Result<nlohmann::json> RepoContext::ReadSealedJson(std::string_view key, std::string_view aad,
                                                   int known_version) const {
  KB_ASSIGN_OR_RETURN(std::string text, ReadSealed(key, aad));
  return ParseVersionedJson(key, text, known_version);
}

Result<int64_t> RepoContext::WriteSealedJson(std::string_view key, std::string_view aad,
                                             const nlohmann::json& j) const {
  return WriteSealed(key, aad, j.dump());
}

Result<nlohmann::json> ParseVersionedJson(std::string_view object, std::string_view text,
                                          int known_version) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Status::Corruption(std::string(object) + ": not a JSON object");
  }
  auto it = j.find("version");
  if (it == j.end() || !it->is_number_integer()) {
    return Status::Corruption(std::string(object) + ": no integer \"version\"");
  }
  int64_t version = it->get<int64_t>();
  if (version > known_version) return VersionTooNew(object, version, known_version);
  if (version < 1) {
    return Status::Corruption(std::string(object) + ": invalid version " + std::to_string(version));
  }
  return j;
}

Result<std::string> JsonString(const nlohmann::json& j, std::string_view field,
                               std::string_view object) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    return Status::Corruption(std::string(object) + ": field \"" + std::string(field) +
                              "\" missing or not a string");
  }
  return it->get<std::string>();
}

Result<int64_t> JsonInt(const nlohmann::json& j, std::string_view field, std::string_view object) {
  auto it = j.find(field);
  if (it == j.end() || !it->is_number_integer()) {
    return Status::Corruption(std::string(object) + ": field \"" + std::string(field) +
                              "\" missing or not an integer");
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return Status::Corruption(std::string(object) + ": field \"" + std::string(field) +
                              "\" out of range");
  }
  return it->get<int64_t>();
}

}  // namespace kb::repo
