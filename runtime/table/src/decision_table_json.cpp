// table_to_json(): the table content as pretty JSON, for people reviewing
// a compiled policy and for diffs between two compilations.
//
// Deterministic: keys in a fixed order (ordered_json), domains sorted by
// name, and peers in review order — by kind (exact, wildcard, IPv4, IPv6),
// then by name or by address and prefix — rather than the table's hash
// order, so that related selectors sit together in a diff.

#include <algorithm>
#include <nlohmann/json.hpp>
#include <string>

#include "tlsp/base/digest.h"
#include "tlsp/decision_table.h"

namespace tlsp {

namespace {

using Json = nlohmann::ordered_json;

using base::hex;

class ContentJson {
 public:
  explicit ContentJson(const TableContent& c) : content_(c) {}

  Json document() const {
    Json j;
    j["policy"] = Json{{"name", content_.policy_name}, {"version", content_.policy_version}};
    j["sources_sha256"] = hex(content_.sources_sha256);
    j["sources"] = Json::array();
    for (const SourceFile& f : content_.sources)
      j["sources"].push_back(Json{{"path", f.path}, {"sha256", hex(f.sha256)}});
    j["default_domain"] = domain(content_.default_domain, false);
    j["domains"] = Json::array();
    for (const DomainRules& d : content_.domains) j["domains"].push_back(domain(d, true));
    return j;
  }

 private:
  std::string ref(const SourceRef& r) const {
    if (r.builtin()) return "built-in";
    const std::string file = r.file < content_.sources.size() ? content_.sources[r.file].path
                                                               : "<unknown file " + std::to_string(r.file) + ">";
    return file + ":" + std::to_string(r.line) + ":" + std::to_string(r.column);
  }

  void add_rule(Json& j, const Rule& r) const {
    j["level"] = std::string(to_string(r.level));
    j["min_tls"] = std::string(to_string(r.min_tls));
    j["origin"] = ref(r.origin);
    j["level_from"] = ref(r.level_from);
    j["min_tls_from"] = ref(r.min_tls_from);
  }

  static bool review_order(const PeerEntry& a, const PeerEntry& b) {
    if (a.kind != b.kind) return a.kind < b.kind;
    if (a.name != b.name) return a.name < b.name;
    if (a.address != b.address) return a.address < b.address;
    return a.prefix_len < b.prefix_len;
  }

  Json direction(const DirectionRules& d) const {
    Json j;
    Json default_peer;
    add_rule(default_peer, d.default_peer);
    j["default_peer"] = std::move(default_peer);
    std::vector<const PeerEntry*> peers;
    for (const PeerEntry& p : d.peers) peers.push_back(&p);
    std::sort(peers.begin(), peers.end(), [](auto* a, auto* b) { return review_order(*a, *b); });
    j["peers"] = Json::array();
    for (const PeerEntry* p : peers) {
      Json e;
      e["selector"] = selector_text(*p);
      add_rule(e, p->rule);
      j["peers"].push_back(std::move(e));
    }
    return j;
  }

  Json domain(const DomainRules& d, bool listed) const {
    Json j;
    if (listed) j["name"] = d.name;
    j["origin"] = ref(d.origin);
    j["outbound"] = direction(d.dir(Direction::outbound));
    j["inbound"] = direction(d.dir(Direction::inbound));
    return j;
  }

  const TableContent& content_;
};

}  // namespace

std::string table_to_json(const TableContent& content) {
  TableContent sorted = content;
  canonicalize(sorted);
  // Replace rather than throw on bytes that are not UTF-8 (a path can hold
  // anything): the dump is for reading, not for parsing back exactly.
  return ContentJson(sorted).document().dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

}  // namespace tlsp
