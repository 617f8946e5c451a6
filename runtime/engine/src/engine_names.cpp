// engine_names.cpp — the spelling of the engine's vocabulary, as used by
// `tlsp decide`, scenario files, logs and reports (docs/engine.md).
#include <array>

#include "tlsp/engine.h"

namespace tlsp {
namespace {

template <typename E, size_t N>
std::string_view name_of(const std::array<std::string_view, N>& names, E value) {
  const size_t i = static_cast<size_t>(value);
  return i < N ? names[i] : std::string_view("?");
}

template <typename E, size_t N>
std::optional<E> value_of(const std::array<std::string_view, N>& names, std::string_view s) {
  for (size_t i = 0; i < N; ++i)
    if (names[i] == s) return static_cast<E>(i);
  return std::nullopt;
}

constexpr std::array<std::string_view, kTlsaKindCount> kTlsa = {
    "dane-ee-match", "dane-ee-mismatch", "dane-ta-match", "dane-ta-mismatch", "pkix-ee",
    "pkix-ta",       "bad-selector",     "bad-mtype",     "bad-length"};
constexpr std::array<std::string_view, kReasonCount> kReasons = {
    "ok",
    "starttls-not-supported",
    "certificate-host-mismatch",
    "certificate-expired",
    "certificate-not-trusted",
    "validation-failure",
    "tlsa-invalid",
    "dnssec-invalid",
    "dane-required",
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
    "mx-lookup-failed",
    "tlsa-lookup-failed",
    "tls-handshake-failure",
    "tls-version-too-low",
    "starttls-required",
    "tlsa-not-found",
    "tlsa-insecure",
    "sts-no-policy",
    "sts-mode-none",
    "plaintext-allowed",
};

}  // namespace

std::string_view to_string(TlsVersion v) { return name_of(kTlsVersionNames, v); }
std::string_view to_string(CertStatus c) { return name_of(kCertStatusNames, c); }
std::string_view to_string(DnsStatus s) { return name_of(kDnsStatusNames, s); }
std::string_view to_string(TlsaKind k) { return name_of(kTlsa, k); }
std::string_view to_string(StsFetch f) { return name_of(kStsFetchNames, f); }
std::string_view to_string(StsMode m) { return name_of(kStsModeNames, m); }
std::string_view to_string(OutcomeKind o) { return name_of(kOutcomeNames, o); }
std::string_view to_string(Channel c) { return name_of(kChannelNames, c); }
std::string_view to_string(Reason r) { return name_of(kReasons, r); }

std::optional<TlsVersion> parse_tls_version(std::string_view s) { return value_of<TlsVersion>(kTlsVersionNames, s); }
std::optional<CertStatus> parse_cert_status(std::string_view s) { return value_of<CertStatus>(kCertStatusNames, s); }
std::optional<DnsStatus> parse_dns_status(std::string_view s) { return value_of<DnsStatus>(kDnsStatusNames, s); }
std::optional<TlsaKind> parse_tlsa_kind(std::string_view s) { return value_of<TlsaKind>(kTlsa, s); }
std::optional<StsFetch> parse_sts_fetch(std::string_view s) { return value_of<StsFetch>(kStsFetchNames, s); }
std::optional<StsMode> parse_sts_mode(std::string_view s) { return value_of<StsMode>(kStsModeNames, s); }
std::optional<OutcomeKind> parse_outcome(std::string_view s) { return value_of<OutcomeKind>(kOutcomeNames, s); }
std::optional<Channel> parse_channel(std::string_view s) { return value_of<Channel>(kChannelNames, s); }
std::optional<Reason> parse_reason(std::string_view s) { return value_of<Reason>(kReasons, s); }

}  // namespace tlsp
