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
#include <unordered_map>

#include "names.h"

namespace tlsp {
namespace {

Rule inherit(const ir::Settings& s, const Rule& parent, SourceRef origin) {
  Rule r;
  r.origin = origin;
  if (s.level.set) {
    r.level = static_cast<Level>(s.level.value);
    r.level_from = s.level.from;
  } else {
    r.level = parent.level;
    r.level_from = parent.level_from;
  }
  if (s.min_tls.set) {
    r.min_tls = static_cast<MinTls>(s.min_tls.value);
    r.min_tls_from = s.min_tls.from;
  } else {
    r.min_tls = parent.min_tls;
    r.min_tls_from = parent.min_tls_from;
  }
  return r;
}

class Resolver {
 public:
  Resolver(LoadedPolicy& p, DiagnosticSink& sink, bool warn) : p_(p), sink_(sink), warn_(warn) {}

  TableContent run() {
    TableContent out;
    header(out);
    sources(out);

    const ir::Domain* dd = find_default_domain();
    check_duplicate_domains();

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
    for (auto& f : p_.files)
      for (auto& d : f.domains)
        if (!d.is_default && !d.disabled) count += d.names.size();
    out.domains.reserve(count);
    for (auto& f : p_.files) {
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
    const ir::Header* first = nullptr;
    for (const auto& f : p_.files)
      for (const auto& h : f.headers) {
        if (first) {
          sink_.error("E0216", h.where, "the policy header is given twice")
              .notes.push_back({first->where, "first given here"});
          continue;
        }
        first = &h;
      }
    if (first) {
      out.policy_name = first->name;
      out.policy_version = first->label;
      return;
    }
    out.policy_name = p_.sources.empty() ? "policy"
                                         : std::filesystem::path(p_.sources.front().display_path).stem().string();
    out.policy_version = "unversioned";
    if (warn_ && !p_.sources.empty())
      sink_.warning("W0404", SourceLocation{0, 1, 1, 0}, "the policy has no `policy` header")
          .help = "start the main file with `policy \"name\" version \"label\";` so tables say what they are";
  }

  void sources(TableContent& out) {
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> all(EVP_MD_CTX_new(), EVP_MD_CTX_free);
    EVP_DigestInit_ex(all.get(), EVP_sha256(), nullptr);
    for (size_t i = 0; i < p_.sources.size(); ++i) {
      const std::string& path = p_.sources[i].table_path;
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

  const ir::Domain* find_default_domain() {
    const ir::Domain* first = nullptr;
    for (const auto& f : p_.files)
      for (const auto& d : f.domains) {
        if (!d.is_default) continue;
        if (first) {
          sink_.error("E0205", d.where, "`default domain` given twice")
              .notes.push_back({first->where, "first given here"});
          continue;
        }
        first = &d;
      }
    return first;
  }

  void check_duplicate_domains() {
    std::unordered_map<std::string_view, SourceLocation> seen;
    for (const auto& f : p_.files)
      for (const auto& d : f.domains)
        for (const auto& n : d.names) {
          auto [it, fresh] = seen.emplace(n.name, n.where);
          if (!fresh)
            sink_.error("E0201", n.where, "domain " + ticked(n.name) + " is listed twice")
                .notes.push_back({it->second, "first listed here"});
        }
  }

  LoadedPolicy& p_;
  DiagnosticSink& sink_;
  bool warn_;
};

}  // namespace

TableContent resolve_policy(LoadedPolicy& policy, DiagnosticSink& sink, bool warn) {
  return Resolver(policy, sink, warn).run();
}

}  // namespace tlsp
