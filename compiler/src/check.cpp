// check.cpp — see check.h. Files are visited in their final order, so
// "first given here" is the first in file order.
#include "check.h"

#include <string_view>
#include <unordered_map>

namespace tlsp {
namespace {

const ir::Header* check_one_header(const std::vector<ir::File>& files, DiagnosticSink& sink) {
  const ir::Header* first = nullptr;
  for (const auto& f : files)
    for (const auto& h : f.headers) {
      if (first) {
        sink.error("E0216", h.where, "the policy header is given twice")
            .notes.push_back({first->where, "first given here"});
        continue;
      }
      first = &h;
    }
  return first;
}

const ir::Domain* check_one_default_domain(const std::vector<ir::File>& files, DiagnosticSink& sink) {
  const ir::Domain* first = nullptr;
  for (const auto& f : files)
    for (const auto& d : f.domains) {
      if (!d.is_default) continue;
      if (first) {
        sink.error("E0205", d.where, "`default domain` given twice")
            .notes.push_back({first->where, "first given here"});
        continue;
      }
      first = &d;
    }
  return first;
}

void check_domains_listed_once(const std::vector<ir::File>& files, DiagnosticSink& sink) {
  std::unordered_map<std::string_view, SourceLocation> seen;
  for (const auto& f : files)
    for (const auto& d : f.domains)
      for (const auto& n : d.names) {
        auto [it, fresh] = seen.emplace(n.name, n.where);
        if (!fresh)
          sink.error("E0201", n.where, "domain " + ticked(n.name) + " is listed twice")
              .notes.push_back({it->second, "first listed here"});
      }
}

}  // namespace

CheckedPolicy check_policy(const std::vector<ir::File>& files, DiagnosticSink& sink) {
  CheckedPolicy out;
  out.header = check_one_header(files, sink);
  out.default_domain = check_one_default_domain(files, sink);
  check_domains_listed_once(files, sink);
  return out;
}

}  // namespace tlsp
