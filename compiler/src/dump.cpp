// dump.cpp — see dump.h.
#include "dump.h"

#include "names.h"
#include "tlsp/decision_table.h"

namespace tlsp {
namespace {

std::string at(const SourceLocation& w) { return std::to_string(w.line) + ":" + std::to_string(w.column); }
std::string at(const SourceRef& r) { return std::to_string(r.line) + ":" + std::to_string(r.column); }
std::string quoted(std::string_view s) { return '"' + display_text(s) + '"'; }

std::string file_line(const ParsedPolicy& parsed, size_t i) {
  return "file " + std::to_string(i) + " " + quoted(parsed.sources[i]->display_path) + "\n";
}

void dump_ast_file(std::string& out, const ast::File& f) {
  for (const auto& h : f.headers)
    out += "  policy " + at(h.where) + " " + quoted(h.name.text) + " version " + quoted(h.label.text) + "\n";
  for (const auto& i : f.includes) out += "  include " + at(i.where) + " " + quoted(i.pattern.text) + "\n";
  for (const auto& d : f.domains) {
    out += d.is_default ? "  default domain " + at(d.where) : "  domain " + at(d.where);
    if (d.disabled) out += " disabled";
    for (uint32_t n = 0; n < d.names.count; ++n) out += " " + quoted(f.strings[d.names.begin + n].text);
    out += "\n";
    for (uint32_t b = 0; b < d.directions.count; ++b) {
      const ast::DirectionBlock& block = f.directions[d.directions.begin + b];
      out += "    " + std::string(to_string(block.direction)) + " " + at(block.where) + "\n";
      for (uint32_t p = 0; p < block.peers.count; ++p) {
        const ast::Peer& peer = f.peers[block.peers.begin + p];
        out += peer.is_default ? "      default peer " + at(peer.where) : "      peer " + at(peer.where);
        if (peer.disabled) out += " disabled";
        for (uint32_t s = 0; s < peer.selectors.count; ++s)
          out += " " + quoted(f.strings[peer.selectors.begin + s].text);
        out += "\n";
        for (uint32_t s = 0; s < peer.settings.count; ++s) {
          const ast::Setting& setting = f.settings[peer.settings.begin + s];
          out += "        " + display_text(setting.key.text) + " " + at(setting.key.where) + " " +
                 display_text(setting.value.text) + "\n";
        }
      }
    }
  }
}

template <typename Value>
std::string setting_text(std::string_view key, const ir::Setting<Value>& s) {
  if (!s.set) return std::string(key) + " unset";
  return std::string(key) + " " + std::string(to_string(s.value)) + " " + at(s.from);
}

std::string settings_text(const ir::Settings& s) {
  return setting_text("level", s.level) + ", " + setting_text("min_tls", s.min_tls) + (s.invalid ? ", invalid" : "");
}

void dump_ir_file(std::string& out, const ir::File& f) {
  for (const auto& h : f.headers)
    out += "  policy " + at(h.where) + " " + quoted(h.name) + " version " + quoted(h.label) + "\n";
  for (const auto& d : f.domains) {
    out += d.is_default ? "  default domain " + at(d.where) : "  domain " + at(d.where);
    if (d.disabled) out += " disabled";
    for (const auto& n : d.names) out += " " + quoted(n.name);
    if (d.listed_peers > 0) out += " (" + std::to_string(d.listed_peers) + " listed peers)";
    out += "\n";
    for (int dir = 0; dir < 2; ++dir) {
      const ir::DirectionList& list = d.lists[dir];
      if (!list.present) continue;
      out += "    " + std::string(to_string(static_cast<Direction>(dir))) + "\n";
      if (list.has_default)
        out += "      default peer " + at(list.default_origin) + ": " + settings_text(list.default_settings) + "\n";
      for (const auto& p : list.peers)
        out += "      peer " + at(p.origin) + " " + quoted(selector_text(p.entry)) + ": " + settings_text(p.settings) +
               "\n";
    }
  }
}

}  // namespace

std::string dump_ast(const ParsedPolicy& parsed) {
  std::string out;
  for (size_t i = 0; i < parsed.files.size(); ++i) {
    out += file_line(parsed, i);
    dump_ast_file(out, parsed.files[i]);
  }
  return out;
}

std::string dump_ir(const std::vector<ir::File>& files, const ParsedPolicy& parsed) {
  std::string out;
  for (size_t i = 0; i < files.size(); ++i) {
    out += file_line(parsed, i);
    dump_ir_file(out, files[i]);
  }
  return out;
}

std::string dump_table(const std::string& image) { return table_to_json(DecisionTable::from_bytes(image).decode()); }

}  // namespace tlsp
