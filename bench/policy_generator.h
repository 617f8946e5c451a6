// policy_generator.h — deterministic large policies for the benchmarks.
//
// A policy of D managed domains, 10 peer entries each: per domain an
// outbound default peer, 8 exact peers and 1 wildcard, and 1 inbound CIDR;
// split into include files of 1,000 domains under a root file. The same
// entries as a flat Postfix TLS policy map (one key per exact peer entry),
// for comparison with postmap. The lookup mix knows which names hit what.
#pragma once

#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace tlsp::bench {

inline constexpr int kEntriesPerDomain = 10;
inline constexpr int kDomainsPerFile = 1000;

inline std::string domain_name(int d) { return "dom" + std::to_string(d) + ".example"; }
inline std::string exact_peer(int d, int p) {
  return "peer" + std::to_string(p) + ".d" + std::to_string(d % 977) + ".example";
}
inline std::string wildcard_parent(int d) { return "w" + std::to_string(d % 331) + ".example"; }
inline std::string cidr_prefix(int d) {  // "10.a.b."
  return "10." + std::to_string(d % 256) + "." + std::to_string(d / 256 % 256) + ".";
}

struct GeneratedPolicy {
  std::string root;
  size_t files = 0;
  size_t bytes = 0;
  size_t entries = 0;
};

inline GeneratedPolicy generate_policy(const std::filesystem::path& dir, int domains) {
  namespace fs = std::filesystem;
  static const char* kLevels[] = {"mandatory", "dane", "dane-only", "mta-sts"};
  fs::create_directories(dir / "inc");
  GeneratedPolicy g;
  g.root = (dir / "root.tlsp").string();
  {
    std::ofstream root(g.root);
    root << "policy \"bench\" version \"" << domains << "\";\ninclude \"inc/*.tlsp\";\n"
         << "default domain {\n  outbound { default peer { level opportunistic; min_tls any; } }\n"
         << "  inbound  { default peer { level opportunistic; min_tls any; } }\n}\n";
    g.bytes += static_cast<size_t>(root.tellp());
    ++g.files;
  }
  for (int first = 0; first < domains; first += kDomainsPerFile) {
    char name[32];
    std::snprintf(name, sizeof name, "part%05d.tlsp", first / kDomainsPerFile);
    std::string text;
    text.reserve(700 * kDomainsPerFile);
    for (int d = first; d < std::min(domains, first + kDomainsPerFile); ++d) {
      text += "domain \"" + domain_name(d) + "\" {\n  outbound {\n"
              "    default peer { level opportunistic; min_tls tls1.2; }\n";
      for (int p = 0; p < 8; ++p)
        text += "    peer \"" + exact_peer(d, p) + "\" { level " + kLevels[(d + p) % 4] + "; min_tls tls1." +
                std::to_string(2 + p % 2) + "; }\n";
      text += "    peer \"*." + wildcard_parent(d) + "\" { level mandatory; }\n  }\n";
      text += "  inbound {\n    peer \"" + cidr_prefix(d) + "0/24\" { level mandatory; }\n  }\n}\n";
      g.entries += kEntriesPerDomain;
    }
    std::ofstream(dir / "inc" / name) << text;
    g.bytes += text.size();
    ++g.files;
  }
  return g;
}

// The flat map Postfix would need for the same number of entries: one
// recipient-domain key per entry (Postfix has no per-sender-domain lists).
inline void generate_postfix_map(const std::filesystem::path& file, int domains) {
  std::ofstream out(file);
  for (int d = 0; d < domains; ++d)
    for (int e = 0; e < kEntriesPerDomain; ++e)
      out << "peer" << e << ".dom" << d << ".example\tencrypt protocols=>=TLSv1.2\n";
}

struct Query {
  bool outbound;
  std::string domain, peer;
};

// An equal mix of exact hits, wildcard hits, CIDR hits and defaults (an
// unknown peer of a listed domain, or an unlisted domain).
inline std::vector<Query> lookup_mix(int domains, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Query> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    int d = static_cast<int>(rng() % static_cast<uint32_t>(domains));
    switch (i % 4) {
      case 0: out.push_back({true, domain_name(d), exact_peer(d, static_cast<int>(rng() % 8))}); break;
      case 1: out.push_back({true, domain_name(d), "mx" + std::to_string(rng() % 9) + "." + wildcard_parent(d)}); break;
      case 2: out.push_back({false, domain_name(d), cidr_prefix(d) + std::to_string(1 + rng() % 254)}); break;
      default:
        if (rng() % 2)
          out.push_back({true, domain_name(d), "unknown" + std::to_string(rng()) + ".example.net"});
        else
          out.push_back({true, "unlisted" + std::to_string(d) + ".example", exact_peer(d, 0)});
    }
  }
  return out;
}

}  // namespace tlsp::bench
