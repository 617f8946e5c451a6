// resolve.cpp — from per-file IR to the fully resolved TableContent.
//
// Inheritance (issue #2, SPEC §2): an omitted setting comes from the list's
// default peer, then from the default domain's default peer for that
// direction, then the built-in opportunistic / any. A disabled domain or
// peer is as if unlisted, so it contributes nothing to the table.
#include "resolve.h"

#include <openssl/evp.h>

#include <filesystem>
#include <memory>

#include "names.h"

namespace tlsp {
namespace {

// A setting written in the block, else the parent rule's (which says where
// it was written in turn).
template <typename Value>
void inherit_setting(const ir::Setting<Value>& s, Value parent, SourceRef parent_from, Value& value,
                     SourceRef& from) {
  value = s.set ? s.value : parent;
  from = s.set ? s.from : parent_from;
}

Rule inherit(const ir::Settings& s, const Rule& parent, SourceRef origin) {
  Rule r;
  r.origin = origin;
  inherit_setting(s.level, parent.level, parent.level_from, r.level, r.level_from);
  inherit_setting(s.min_tls, parent.min_tls, parent.min_tls_from, r.min_tls, r.min_tls_from);
  return r;
}

class Resolver {
 public:
  Resolver(std::vector<ir::File>& files, const CheckedPolicy& checked, const ParsedPolicy& parsed, DiagnosticSink& sink,
           bool warn)
      : files_(files), checked_(checked), p_(parsed), sink_(sink), warn_(warn) {}

  TableContent run() {
    TableContent out;
    header(out);
    sources(out);

    const ir::Domain* dd = checked_.default_domain;

    out.default_domain.origin = dd ? dd->origin : SourceRef{};
    Rule dd_default[2];
    for (int d = 0; d < 2; ++d) {
      const ir::DirectionList* list = dd ? &dd->lists[d] : nullptr;
      if (list && list->has_default)
        dd_default[d] = inherit(list->default_settings, Rule{}, list->default_origin);
      out.default_domain.directions[d].default_peer = dd_default[d];
      if (list) out.default_domain.directions[d].peers = peers(*list, dd_default[d]);
    }

    size_t count = 0;
    for (auto& f : files_)
      for (auto& d : f.domains)
        if (!d.is_default && !d.disabled) count += d.names.size();
    out.domains.reserve(count);
    for (auto& f : files_) {
      for (auto& d : f.domains) {
        if (d.is_default) continue;
        if (d.disabled) {
          if (warn_ && d.listed_peers > 0 && !d.names.empty())
            sink_.warning("W0402", d.first_peer,
                          "domain " + ticked(d.names.front().name) + " is disabled, so its " +
                              std::to_string(d.listed_peers) + " listed peer" + (d.listed_peers == 1 ? "" : "s") +
                              " are ignored")
                .help = "a disabled domain gets the default domain's rules";
          continue;
        }
        DomainRules rules;
        rules.origin = d.origin;
        for (int dir = 0; dir < 2; ++dir) {
          const ir::DirectionList& list = d.lists[dir];
          Rule def = list.has_default ? inherit(list.default_settings, dd_default[dir], list.default_origin)
                                      : dd_default[dir];
          rules.directions[dir].default_peer = def;
          rules.directions[dir].peers = peers(list, def);
        }
        for (size_t i = 0; i < d.names.size(); ++i) {
          DomainRules copy = (i + 1 == d.names.size()) ? std::move(rules) : rules;
          copy.name = std::move(d.names[i].name);
          out.domains.push_back(std::move(copy));
        }
      }
    }
    if (warn_ && !dd) {
      SourceLocation at{p_.sources.empty() ? kBuiltinFile : 0u, 1, 1, 0};
      sink_.warning("W0401", at, "the policy has no `default domain`")
          .help = "unlisted domains get `level opportunistic; min_tls any;` in both directions; "
                  "write a `default domain { ... }` block to say so explicitly";
    }
    return out;
  }

 private:
  std::vector<PeerEntry> peers(const ir::DirectionList& list, const Rule& def) {
    std::vector<PeerEntry> out;
    out.reserve(list.peers.size());
    for (const auto& p : list.peers) {
      PeerEntry e = p.entry;
      e.rule = inherit(p.settings, def, p.origin);
      if (warn_ && !p.settings.invalid && e.rule.level == def.level && e.rule.min_tls == def.min_tls) {
        sink_.warning("W0403", p.where,
                      "peer " + ticked(selector_text(e)) + " has the same level and minimum version as the default peer")
            .help = "the entry changes nothing; remove it, or give it the settings it was meant to have";
      }
      out.push_back(std::move(e));
    }
    return out;
  }

  void header(TableContent& out) {
    const ir::Header* first = checked_.header;
    if (first) {
      out.policy_name = first->name;
      out.policy_version = first->label;
      return;
    }
    out.policy_name = p_.sources.empty() ? "policy"
                                         : std::filesystem::path(p_.sources.front()->display_path).stem().string();
    out.policy_version = "unversioned";
    if (warn_ && !p_.sources.empty())
      sink_.warning("W0404", SourceLocation{0, 1, 1, 0}, "the policy has no `policy` header")
          .help = "start the main file with `policy \"name\" version \"label\";` so tables say what they are";
  }

  void sources(TableContent& out) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> all(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(all.get(), EVP_sha256(), nullptr);
    for (size_t i = 0; i < p_.sources.size(); ++i) {
      const std::string& path = p_.sources[i]->table_path;
      out.sources.push_back({path, p_.sha256[i]});
      uint32_t len = static_cast<uint32_t>(path.size());
      unsigned char le[4] = {static_cast<unsigned char>(len), static_cast<unsigned char>(len >> 8),
                             static_cast<unsigned char>(len >> 16), static_cast<unsigned char>(len >> 24)};
      EVP_DigestUpdate(all.get(), le, 4);
      EVP_DigestUpdate(all.get(), path.data(), path.size());
      EVP_DigestUpdate(all.get(), p_.sha256[i].data(), 32);
    }
    EVP_DigestFinal_ex(all.get(), out.sources_sha256.data(), nullptr);
  }

  std::vector<ir::File>& files_;
  const CheckedPolicy& checked_;
  const ParsedPolicy& p_;
  DiagnosticSink& sink_;
  bool warn_;
};

}  // namespace

TableContent resolve_policy(std::vector<ir::File>& files, const CheckedPolicy& checked, const ParsedPolicy& parsed,
                            DiagnosticSink& sink, bool warn) {
  return Resolver(files, checked, parsed, sink, warn).run();
}

}  // namespace tlsp
