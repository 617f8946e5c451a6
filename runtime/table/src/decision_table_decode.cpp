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

Rule to_rule(uint8_t level, uint8_t min_tls, const tl::RuleProvenance& p) {
  return {static_cast<Level>(level), static_cast<MinTls>(min_tls), to_ref(p.origin), to_ref(p.level_from),
          to_ref(p.min_tls_from)};
}

DomainRules decode_domain(const BlockView& block) {
  const tl::BlockHeader& h = block.header();
  DomainRules out;
  out.name = std::string(block.name());
  out.origin = to_ref(block.provenance().origin);
  const tl::PeerRecord* records = block.records();
  uint64_t i = 0;  // record number in the block
  for (int dir = 0; dir < 2; ++dir) {
    DirectionRules& rules = out.directions[dir];
    rules.default_peer = to_rule(h.level[dir], h.min_tls[dir], block.provenance().default_peer[dir]);
    rules.peers.reserve(block.record_count(dir));
    for (int kind = 0; kind < 4; ++kind)
      for (uint32_t k = 0; k < h.kind_count[dir][kind]; ++k, ++i) {
        const tl::PeerRecord& p = records[i];
        PeerEntry e;
        e.kind = static_cast<SelectorKind>(kind);
        const std::string_view bytes = block.selector(p);
        if (e.kind == SelectorKind::exact || e.kind == SelectorKind::wildcard) {
          e.name = std::string(bytes);
        } else {
          std::memcpy(e.address.data(), bytes.data(), bytes.size());
          e.prefix_len = p.prefix_len;
        }
        e.rule = to_rule(p.level, p.min_tls, block.peer_provenance(i));
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
  // The default domain's block, then the listed domains' in name order.
  BlockView block = t.default_domain();
  c.default_domain = decode_domain(block);
  c.domains.reserve(t.domain_count);
  for (uint32_t i = 0; i < t.domain_count; ++i) {
    block = block.next();
    c.domains.push_back(decode_domain(block));
  }
  return c;
}

}  // namespace tlsp
