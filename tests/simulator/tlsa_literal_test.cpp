// tlsa_literal_test.cpp — the simulator's literal TLSA records
// (tlsp::sim::classify_tlsa_record) against the one usability rule of
// runtime/net (tlsp::classify_tlsa_record, tlsa_usability.cpp): over the
// whole space of usages, selectors, matching types and data lengths that
// the rule distinguishes, the model calls a record unusable exactly when
// the rule does, with the rule's kind, and only the match of a usable
// record is the model's own. The stand-in mode skips only the DER check.
#include <gtest/gtest.h>
#include <openssl/err.h>

#include <string>
#include <vector>

#include "tlsp/dane.h"
#include "tlsp/simulator.h"

namespace {

using namespace tlsp;

sim::TlsaRecordScript literal(uint8_t usage, uint8_t selector, uint8_t mtype, std::string data) {
  sim::TlsaRecordScript r;
  r.usage = usage;
  r.selector = selector;
  r.mtype = mtype;
  r.data = std::move(data);
  r.text = std::to_string(usage) + " " + std::to_string(selector) + " " + std::to_string(mtype) + " ...";
  return r;
}

TlsaRecord record_of(const sim::TlsaRecordScript& r) {
  return {r.usage, r.selector, r.mtype, std::vector<uint8_t>(r.data.begin(), r.data.end())};
}

TEST(TlsaLiteral, UnusableExactlyWhereTheRuntimeRuleSays) {
  const std::string host = "mx1.partner.example";
  int usable = 0, unusable = 0;
  for (int usage : {0, 1, 2, 3, 4, 255})
    for (int selector : {0, 1, 2, 255})
      for (int mtype : {0, 1, 2, 3, 255})
        for (size_t length : {0, 1, 16, 31, 32, 33, 63, 64, 65}) {
          const auto r = literal(static_cast<uint8_t>(usage), static_cast<uint8_t>(selector),
                                 static_cast<uint8_t>(mtype), std::string(length, 'x'));
          SCOPED_TRACE(r.text + " " + std::to_string(length) + " bytes");
          const TlsaUsability rule = classify_tlsa_record(record_of(r), TlsaData::stand_in);
          const TlsaKind model = sim::classify_tlsa_record(host, r);
          if (!rule.usable()) {
            EXPECT_EQ(model, *rule.unusable) << rule.problem;
            EXPECT_FALSE(model == TlsaKind::dane_ee_match || model == TlsaKind::dane_ee_mismatch ||
                         model == TlsaKind::dane_ta_match || model == TlsaKind::dane_ta_mismatch);
            ++unusable;
            continue;
          }
          ++usable;
          // 'x' bytes match no stand-in: a usable record is the mismatch of its usage.
          EXPECT_EQ(model, rule.kind_before_match);
          EXPECT_TRUE(tlsa_bit(model) & kUsableTlsaKinds);
        }
  // The space holds both: usages 2/3 with selectors 0/1, matching types
  // 0 (non-empty), 1 (32 bytes), 2 (64 bytes).
  EXPECT_EQ(usable, 2 * 2 * (8 + 1 + 1));
  EXPECT_GT(unusable, usable);
}

TEST(TlsaLiteral, FullDataIsAStandInInTheModelAndDerOnTheWire) {
  const std::string host = "mx1.partner.example";
  const auto leaf = literal(3, 0, 0, sim::simulated_leaf_certificate(host));
  const auto ca_key = literal(2, 1, 0, sim::simulated_ca_public_key());
  const auto other = literal(3, 1, 0, "not the key");
  EXPECT_EQ(sim::classify_tlsa_record(host, leaf), TlsaKind::dane_ee_match);
  EXPECT_EQ(sim::classify_tlsa_record(host, ca_key), TlsaKind::dane_ta_match);
  EXPECT_EQ(sim::classify_tlsa_record(host, other), TlsaKind::dane_ee_mismatch);
  EXPECT_TRUE(classify_tlsa_record(record_of(leaf), TlsaData::stand_in).usable());
  // On the wire the same bytes are not a DER certificate or key.
  for (const auto& r : {leaf, ca_key, other}) {
    const TlsaUsability der = classify_tlsa_record(record_of(r));
    ASSERT_FALSE(der.usable()) << r.text;
    EXPECT_EQ(*der.unusable, TlsaKind::bad_length);
    EXPECT_EQ(der.problem, r.selector == 0 ? "the data is not one DER certificate"
                                           : "the data is not one DER SubjectPublicKeyInfo");
  }
}

TEST(TlsaLiteral, TheDerCheckLeavesOpenSslsErrorQueueAsItWas) {
  ERR_clear_error();
  EXPECT_FALSE(classify_tlsa_record(record_of(literal(3, 0, 0, "garbage"))).usable());
  EXPECT_FALSE(classify_tlsa_record(record_of(literal(3, 1, 0, "garbage"))).usable());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(TlsaLiteral, SymbolicRecordsAreTakenAsWritten) {
  sim::TlsaRecordScript r;
  r.kind = TlsaKind::dane_ta_match;
  EXPECT_EQ(sim::classify_tlsa_record("mx.example", r), TlsaKind::dane_ta_match);
}

}  // namespace
