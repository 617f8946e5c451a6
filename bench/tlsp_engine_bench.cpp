// tlsp_engine_bench.cpp — decisions per second of the enforcement engine on
// one core, over the whole outbound fact space (every level, minimum,
// STARTTLS, peer version set, certificate, MX/address/TLSA DNSSEC status,
// TLSA record set and MTA-STS fact combination), and over inbound.
#include <chrono>
#include <cstdio>

#include "tlsp/engine.h"

using namespace tlsp;
using Clock = std::chrono::steady_clock;

int main() {
  const Level levels[] = {Level::opportunistic, Level::mandatory, Level::dane, Level::dane_only, Level::mta_sts};
  const MinTls mins[] = {MinTls::any, MinTls::tls1_2, MinTls::tls1_3};
  const DnsStatus lookups[] = {DnsStatus::secure, DnsStatus::insecure, DnsStatus::bogus, DnsStatus::servfail,
                               DnsStatus::timeout};
  const TlsaKindSet records[] = {0, tlsa_bit(TlsaKind::dane_ee_match), tlsa_bit(TlsaKind::dane_ta_match),
                                 tlsa_bit(TlsaKind::dane_ee_mismatch), tlsa_bit(TlsaKind::pkix_ee)};
  uint64_t n = 0, sink = 0;
  auto start = Clock::now();
  for (int round = 0; round < 1; ++round)
    for (Level level : levels)
      for (MinTls min : mins)
        for (int starttls = 0; starttls < 2; ++starttls)
          for (int peer = 0; peer < 16; ++peer)
            for (int cert = 0; cert < 5; ++cert)
              for (DnsStatus mx : lookups)
                for (DnsStatus addr : lookups)
                  for (int tdns = 0; tdns < 6; ++tdns)
                    for (TlsaKindSet recs : records)
                      for (int sts = 0; sts < 60; ++sts) {
                        PeerFacts f;
                        f.starttls = starttls;
                        f.peer_tls = static_cast<TlsVersionSet>(peer << 1);
                        f.cert = static_cast<CertStatus>(cert);
                        f.mx_dnssec = mx;
                        f.addr_dnssec = addr;
                        f.tlsa_dnssec = static_cast<DnsStatus>(tdns);
                        f.tlsa = recs;
                        f.sts.txt = sts & 1;
                        f.sts.fetch = static_cast<StsFetch>(sts / 2 % 5);
                        f.sts.mode = static_cast<StsMode>(sts / 10 % 3);
                        f.sts.mx_match = sts / 30;
                        Outcome o = decide(Direction::outbound, {level, min}, f);
                        sink += static_cast<uint64_t>(o.kind) + static_cast<uint64_t>(o.reason);
                        ++n;
                      }
  double s = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("engine: %llu outbound decisions in %.2f s on one core: %.1f million decisions/s (%.1f ns each)\n",
              static_cast<unsigned long long>(n), s, n / s / 1e6, s * 1e9 / n);
  return sink == 1 ? 1 : 0;
}
