// lower.cpp — the file-local checks: everything that can be decided by
// looking at one file alone (names, selectors, settings, duplicates inside
// one list), turning each file's AST into its IR. Files are independent, so
// they are lowered in parallel.
#include "lower.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <thread>
#include <unordered_map>

#include "internal_error.h"

#include "names.h"

namespace tlsp {
namespace {

SourceRef ref_of(const SourceLocation& w) { return SourceRef{w.file, w.line, w.column}; }

template <size_t N>
std::string suggestion(std::string_view got, const std::array<std::string_view, N>& known, std::string_view what) {
  std::string best;
  size_t best_d = 3;
  for (auto k : known) {
    size_t d = edit_distance(got, k);
    if (d < best_d) {
      best_d = d;
      best = std::string(k);
    }
  }
  std::string list;
  for (size_t i = 0; i < N; ++i) {
    if (i > 0) list += (i + 1 == N) ? " or " : ", ";
    list += "`" + std::string(known[i]) + "`";
  }
  if (!best.empty()) return "did you mean `" + best + "`? " + std::string(what) + " " + list;
  return std::string(what) + " " + list;
}

constexpr std::array<std::string_view, 2> kSettingNames = {"level", "min_tls"};

class FileLowering {
 public:
  FileLowering(const ast::File& f, DiagnosticSink& sink) : f_(f), sink_(sink) {}

  ir::File run() {
    ir::File out;
    for (const auto& h : f_.headers) {
      if (h.name.text.empty()) sink_.error("E0217", h.name.where, "the policy name is empty");
      if (h.label.text.empty()) sink_.error("E0217", h.label.where, "the policy version label is empty");
      out.headers.push_back({std::string(h.name.text), std::string(h.label.text), h.where});
    }
    out.domains.reserve(f_.domains.size());
    for (const auto& d : f_.domains) out.domains.push_back(domain(d));
    return out;
  }

 private:
  ir::Domain domain(const ast::Domain& d) {
    ir::Domain out;
    out.is_default = d.is_default;
    out.disabled = d.disabled;
    out.where = d.where;
    out.origin = ref_of(d.where);
    for (uint32_t i = 0; i < d.names.count; ++i) {
      const ast::Text& t = f_.strings[d.names.begin + i];
      std::string name;
      NameProblem problem;
      if (t.text.size() >= 2 && t.text[0] == '*' && t.text[1] == '.') {
        Diagnostic& diag = sink_.error("E0211", t.where, "a managed domain cannot be a wildcard: " + ticked(t.text));
        diag.help = "list each managed domain by its exact name";
        continue;
      }
      if (!normalize_domain_name(t.text, name, problem)) {
        report(problem, t.where);
        continue;
      }
      out.names.push_back({std::move(name), t.where});
    }
    SourceLocation seen[2] = {};
    for (uint32_t i = 0; i < d.directions.count; ++i) {
      const ast::DirectionBlock& b = f_.directions[d.directions.begin + i];
      const int di = static_cast<int>(b.direction);
      if (seen[di].valid()) {
        Diagnostic& diag = sink_.error("E0204", b.where, ticked(to_string(b.direction)) + " given twice in one domain");
        diag.notes.push_back({seen[di], "first given here"});
        diag.help = "put all " + std::string(to_string(b.direction)) + " peers in one block";
        continue;
      }
      seen[di] = b.where;
      out.lists[di] = list(b, out);
    }
    return out;
  }

  ir::DirectionList list(const ast::DirectionBlock& b, ir::Domain& domain) {
    ir::DirectionList out;
    out.present = true;
    out.peers.reserve(b.peers.count);
    SourceLocation default_at;
    std::unordered_map<std::string, SourceLocation> selectors;
    selectors.reserve(b.peers.count * 2);
    for (uint32_t i = 0; i < b.peers.count; ++i) {
      const ast::Peer& p = f_.peers[b.peers.begin + i];
      ir::Settings settings = parse_settings(p, b.direction);
      if (p.is_default) {
        if (default_at.valid()) {
          Diagnostic& diag = sink_.error("E0203", p.where, "`default peer` given twice in one list");
          diag.notes.push_back({default_at, "first given here"});
          continue;
        }
        default_at = p.where;
        out.has_default = true;
        out.default_settings = settings;
        out.default_origin = ref_of(p.where);
        continue;
      }
      if (domain.listed_peers++ == 0) domain.first_peer = p.where;
      for (uint32_t s = 0; s < p.selectors.count; ++s) {
        const ast::Text& t = f_.strings[p.selectors.begin + s];
        ir::Peer peer;
        NameProblem problem;
        if (!parse_peer_selector(t.text, peer.entry, problem)) {
          report(problem, t.where);
          continue;
        }
        const bool is_cidr = peer.entry.kind == SelectorKind::cidr_v4 || peer.entry.kind == SelectorKind::cidr_v6;
        if (is_cidr && b.direction == Direction::outbound) {
          Diagnostic& diag = sink_.error("E0209", t.where,
                                         "an outbound peer is a recipient domain, not an address: " + ticked(t.text));
          diag.help = "address and CIDR selectors belong in an `inbound` list";
          continue;
        }
        std::string key(1, static_cast<char>(peer.entry.kind));
        if (is_cidr) {
          key.append(reinterpret_cast<const char*>(peer.entry.address.data()), 16);
          key += static_cast<char>(peer.entry.prefix_len);
        } else {
          key += peer.entry.name;
        }
        auto [it, fresh] = selectors.emplace(std::move(key), t.where);
        if (!fresh) {
          Diagnostic& diag = sink_.error("E0202", t.where,
                                         "peer " + ticked(selector_text(peer.entry)) + " listed twice in one " +
                                             std::string(to_string(b.direction)) + " list");
          diag.notes.push_back({it->second, "first listed here"});
          continue;
        }
        if (p.disabled) continue;  // checked, then treated as unlisted (SPEC §2)
        peer.settings = settings;
        peer.origin = ref_of(t.where);
        peer.where = t.where;
        out.peers.push_back(std::move(peer));
      }
    }
    return out;
  }

  ir::Settings parse_settings(const ast::Peer& p, Direction direction) {
    ir::Settings out;
    SourceLocation level_at, min_at;
    for (uint32_t i = 0; i < p.settings.count; ++i) {
      const ast::Setting& s = f_.settings[p.settings.begin + i];
      if (s.key.text == "level") {
        if (!once(level_at, s, out.invalid)) continue;
        auto level = parse_level(s.value.text);
        if (!level) {
          out.invalid = true;
          Diagnostic& diag = sink_.error("E0213", s.value.where, "unknown level " + ticked(s.value.text));
          diag.help = suggestion(s.value.text, kLevelNames, "levels are");
          continue;
        }
        if (direction == Direction::inbound && is_outbound_only(*level)) {
          out.invalid = true;
          Diagnostic& diag = sink_.error("E0210", s.value.where,
                                         "level " + ticked(s.value.text) + " applies to outbound delivery only");
          diag.help = "an inbound peer can be required to use TLS with `level mandatory`";
          continue;
        }
        out.level = {true, *level, ref_of(s.key.where)};
      } else if (s.key.text == "min_tls") {
        if (!once(min_at, s, out.invalid)) continue;
        auto v = parse_min_tls(s.value.text);
        if (!v) {
          out.invalid = true;
          Diagnostic& diag = sink_.error("E0214", s.value.where, "unknown TLS version " + ticked(s.value.text));
          diag.help = suggestion(s.value.text, kMinTlsNames, "versions are");
          continue;
        }
        out.min_tls = {true, *v, ref_of(s.key.where)};
      } else {
        out.invalid = true;
        Diagnostic& diag = sink_.error("E0212", s.key.where, "unknown setting " + ticked(s.key.text));
        diag.help = suggestion(s.key.text, kSettingNames, "settings are");
      }
    }
    return out;
  }

  bool once(SourceLocation& first, const ast::Setting& s, bool& invalid) {
    if (first.valid()) {
      invalid = true;
      Diagnostic& diag = sink_.error("E0215", s.key.where, "setting " + ticked(s.key.text) + " given twice");
      diag.notes.push_back({first, "first given here"});
      return false;
    }
    first = s.key.where;
    return true;
  }

  void report(const NameProblem& problem, const SourceLocation& where) {
    Diagnostic& diag = sink_.error(problem.code, where, problem.message);
    diag.help = problem.help;
  }

  const ast::File& f_;
  DiagnosticSink& sink_;
};

}  // namespace

ir::File lower_file(const ast::File& file, DiagnosticSink& sink) { return FileLowering(file, sink).run(); }

std::vector<ir::File> lower_files(std::vector<ast::File>& files, const std::vector<bool>& parsed,
                                  std::vector<DiagnosticSink>& sinks, unsigned threads) {
  TLSP_ASSERT(parsed.size() == files.size() && sinks.size() >= files.size(),
              "every file needs its parse result and its own sink");
  std::vector<ir::File> out(files.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < files.size();)
      if (parsed[i]) {
        out[i] = lower_file(files[i], sinks[i]);
        files[i] = ast::File{};  // released: see lower.h
      }
  };
  std::vector<std::thread> pool;
  const size_t workers = std::min<size_t>(std::max(1u, threads), files.size());
  for (size_t i = 1; i < workers; ++i) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();
  return out;
}

}  // namespace tlsp
