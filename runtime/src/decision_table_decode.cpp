// Reading a loaded table back out: the header accessors, describe(), and
// decode() — the whole TableContent, in the canonical order the file
// stores (so canonicalize(c); decode(encode(c)) == c).
#include <cstring>
#include <string>

#include "table_layout.h"
#include "table_view.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace tl = table_layout;

namespace {

SourceRef to_ref(const tl::SourceRecord& r) { return {r.file, r.line, r.column}; }

Rule to_rule(uint8_t level, uint8_t min_tls, const tl::SourceRecord& origin, const tl::SourceRecord& level_from,
             const tl::SourceRecord& min_tls_from) {
  return {static_cast<Level>(level), static_cast<MinTls>(min_tls), to_ref(origin), to_ref(level_from),
          to_ref(min_tls_from)};
}

DomainRules decode_domain(const DecisionTable::Impl& t, const tl::DomainRecord& d) {
  DomainRules out;
  out.name = std::string(t.str(d.name));
  out.origin = to_ref(d.origin);
  for (int dir = 0; dir < 2; ++dir) {
    const tl::DirectionRecord& r = d.directions[dir];
    DirectionRules& rules = out.directions[dir];
    rules.default_peer = to_rule(r.level, r.min_tls, r.origin, r.level_from, r.min_tls_from);
    uint64_t end = r.peer_begin;
    for (uint32_t count : r.kind_count) end += count;
    rules.peers.reserve(end - r.peer_begin);
    for (uint64_t i = r.peer_begin; i < end; ++i) {
      const tl::PeerRecord& p = t.peers[i];
      const tl::PeerProvenance& prov = t.provenance[i];
      PeerEntry e;
      e.kind = static_cast<SelectorKind>(p.kind);
      const std::string_view bytes = t.str(p.selector);
      if (e.kind == SelectorKind::exact || e.kind == SelectorKind::wildcard) {
        e.name = std::string(bytes);
      } else {
        std::memcpy(e.address.data(), bytes.data(), bytes.size());
        e.prefix_len = p.prefix_len;
      }
      e.rule = to_rule(p.level, p.min_tls, prov.origin, prov.level_from, prov.min_tls_from);
      rules.peers.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace

std::string_view DecisionTable::policy_name() const { return impl_->str(impl_->header->policy_name); }
std::string_view DecisionTable::policy_version() const { return impl_->str(impl_->header->policy_version); }

std::array<uint8_t, 32> DecisionTable::sources_sha256() const {
  std::array<uint8_t, 32> out;
  std::memcpy(out.data(), impl_->header->sources_sha256, out.size());
  return out;
}

uint32_t DecisionTable::format_version() const { return impl_->header->format_version; }
size_t DecisionTable::domain_count() const { return impl_->domain_count; }
size_t DecisionTable::peer_count() const { return impl_->peer_count; }
size_t DecisionTable::source_count() const { return impl_->source_count; }

std::string_view DecisionTable::source_path(uint32_t file) const {
  if (file >= impl_->source_count) return {};
  return impl_->str(impl_->sources[file].path);
}

std::string DecisionTable::describe(const SourceRef& ref) const {
  if (ref.builtin()) return "built-in default";
  if (ref.file >= impl_->source_count)
    return "<unknown file " + std::to_string(ref.file) + ">:" + std::to_string(ref.line);
  return std::string(source_path(ref.file)) + ":" + std::to_string(ref.line);
}

TableContent DecisionTable::decode() const {
  const Impl& t = *impl_;
  TableContent c;
  c.policy_name = std::string(policy_name());
  c.policy_version = std::string(policy_version());
  c.sources_sha256 = sources_sha256();
  c.sources.reserve(t.source_count);
  for (uint32_t i = 0; i < t.source_count; ++i) {
    SourceFile f;
    f.path = std::string(t.str(t.sources[i].path));
    std::memcpy(f.sha256.data(), t.sources[i].sha256, f.sha256.size());
    c.sources.push_back(std::move(f));
  }
  c.domains.reserve(t.domain_count);
  for (uint32_t i = 0; i < t.domain_count; ++i) c.domains.push_back(decode_domain(t, t.domains[i]));
  c.default_domain = decode_domain(t, t.default_domain());
  return c;
}

}  // namespace tlsp
