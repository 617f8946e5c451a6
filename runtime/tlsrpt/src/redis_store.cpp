// redis_store.cpp — the TLSRPT store in Redis, shared by a fleet of relays
// (`tlsrpt-store = redis://HOST:PORT/DB`), on tlsp/redis_client.h.
//
// Keys (every one expires kRedisKeepDays after its last write):
//   tlsp:tlsrpt:session:<session id>        "1": the session was counted
//   tlsp:tlsrpt:<day>:domains               SET of the day's policy domains
//   tlsp:tlsrpt:<day>:<domain>:counts       HASH: "s" + netstring(policy) -> successful,
//                                           "f" + netstring(policy) -> failed,
//                                           "d" + netstring(policy) + detail -> failed sessions
//   tlsp:tlsrpt:<day>:<domain>:claim        the report id of the first claimer (SET NX)
// (policy and detail in their canonical form, store_codec.h; a domain is a
// normalised host name, so it holds no `:`.)
//
// record() is ONE Lua script (kRecordScript): SET NX of the session key,
// then the HINCRBYs, atomically on the server; a retried record() (a lost
// reply, a relay restarted after kill -9) finds the session key and counts
// nothing. The connection: one RedisClient (one mutex; redis_client.h)
// with kRedisTimeout for connect and commands; a failure is an error
// result and the next call connects again.
#include <algorithm>
#include <map>

#include "store_codec.h"
#include "stores.h"

namespace tlsp::tlsrpt {
namespace {

using redis::Reply;
using redis::Result;

constexpr const char* kRecordScript = R"lua(
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[4], 1) end
redis.call('EXPIRE', KEYS[3], ARGV[1])
return 1
)lua";

constexpr int64_t kKeepSeconds = int64_t{kRedisKeepDays} * 24 * 3600;

std::string day_key(std::string_view day, std::string_view domain, std::string_view what) {
  return "tlsp:tlsrpt:" + std::string(day) + ":" + std::string(domain) + ":" + std::string(what);
}

class RedisStore final : public Store {
 public:
  RedisStore(redis::RedisUrl url, redis::ClientOptions options) : client_(std::move(url), options) {}

  bool record(const SessionRecord& r, std::string* error) override {
    const std::string day = utc_day(r.time);
    const std::string policy = codec::netstring(codec::encode_policy(r.policy));
    const Result res = client_.eval(
        kRecordScript,
        {"tlsp:tlsrpt:session:" + r.session_id, "tlsp:tlsrpt:" + day + ":domains", day_key(day, r.policy.domain, "counts")},
        {std::to_string(kKeepSeconds), r.policy.domain, (r.success ? "s" : "f") + policy,
         r.success ? std::string() : "d" + policy + codec::encode_detail(r.failure)});
    if (!res.ok()) return fail(error, res.error);
    if (res.reply.type != Reply::Type::integer) return fail(error, "the record script gave no number");
    return true;
  }

  std::vector<std::string> domains(std::string_view day, std::string* error) override {
    const Result res = client_.command({"SMEMBERS", "tlsp:tlsrpt:" + std::string(day) + ":domains"});
    std::vector<std::string> out;
    if (!res.ok()) return fail(error, res.error), out;
    for (const Reply& e : res.reply.elements) out.push_back(e.str);
    std::sort(out.begin(), out.end());
    return out;
  }

  std::vector<PolicySummary> summaries(std::string_view day, std::string_view domain, std::string* error) override {
    const Result res = client_.command({"HGETALL", day_key(day, domain, "counts")});
    if (!res.ok()) return fail(error, res.error), std::vector<PolicySummary>{};
    if (res.reply.type != Reply::Type::array || res.reply.elements.size() % 2 != 0)
      return fail(error, "a counts hash is not a hash"), std::vector<PolicySummary>{};
    // By policy form, so that the order is stable (the canonical form's).
    std::map<std::string, PolicySummary> by_policy;
    for (size_t i = 0; i < res.reply.elements.size(); i += 2) {
      const std::string& field = res.reply.elements[i].str;
      const std::string& value = res.reply.elements[i + 1].str;
      uint64_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9') return fail(error, "a count is not a number"), std::vector<PolicySummary>{};
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      std::string_view rest = field;
      if (rest.empty()) return fail(error, "an empty counts field"), std::vector<PolicySummary>{};
      const char kind = rest.front();
      rest.remove_prefix(1);
      std::optional<std::string_view> policy_form = codec::next_netstring(rest);
      std::optional<Policy> policy = policy_form ? codec::decode_policy(*policy_form) : std::nullopt;
      if (!policy) return fail(error, "a counts field is not in tlsp's canonical form"), std::vector<PolicySummary>{};
      PolicySummary& s = by_policy[std::string(*policy_form)];
      s.policy = std::move(*policy);
      if (kind == 's' && rest.empty()) {
        s.successful = n;
      } else if (kind == 'f' && rest.empty()) {
        s.failed = n;
      } else if (kind == 'd') {
        std::optional<FailureDetail> d = codec::decode_detail(rest);
        if (!d) return fail(error, "a failure detail is not in tlsp's canonical form"), std::vector<PolicySummary>{};
        s.failures.emplace_back(std::move(*d), n);
      } else {
        return fail(error, "a counts field of an unknown kind"), std::vector<PolicySummary>{};
      }
    }
    std::vector<PolicySummary> out;
    for (auto& [form, s] : by_policy) {
      std::sort(s.failures.begin(), s.failures.end(), [](const auto& a, const auto& b) {
        return codec::encode_detail(a.first) < codec::encode_detail(b.first);
      });
      out.push_back(std::move(s));
    }
    return out;
  }

  ReportClaim claim_report(std::string_view day, std::string_view domain, std::string_view report_id,
                           std::string* error) override {
    ReportClaim c;
    const std::string key = day_key(day, domain, "claim");
    // SET NX, and the kept id when it was there, in one script.
    const Result res = client_.eval(
        "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return {1, ARGV[1]} end "
        "return {0, redis.call('GET', KEYS[1])}",
        {key}, {std::string(report_id), std::to_string(kKeepSeconds)});
    if (!res.ok()) return fail(error, res.error), c;
    if (res.reply.type != Reply::Type::array || res.reply.elements.size() != 2)
      return fail(error, "the claim script gave no answer"), c;
    c.claimed = res.reply.elements[0].integer == 1;
    c.report_id = res.reply.elements[1].str;
    return c;
  }

  bool prune(std::string_view, std::string*) override { return true; }  // keys expire

  std::string describe() const override { return client_.describe(); }

 private:
  bool fail(std::string* error, std::string_view what) const {
    if (error != nullptr) {
      *error = std::string(what);
      if (!what.starts_with("redis ")) *error = "tlsrpt store " + describe() + ": " + *error;
    }
    return false;
  }

  redis::RedisClient client_;
};

}  // namespace

std::unique_ptr<Store> open_redis_store(const redis::RedisUrl& url, redis::ClientOptions options, std::string*) {
  // Not connected yet: a relay starts while Redis is down, and its
  // record() calls say so until Redis is back.
  return std::make_unique<RedisStore>(url, options);
}

std::unique_ptr<Store> open_store(std::string_view spec, std::string* error) {
  if (redis::looks_like_redis_url(spec)) {
    const redis::RedisUrlParse p = redis::parse_redis_url(spec);
    if (!p.url) {
      if (error != nullptr) *error = "tlsrpt store: " + p.problem;
      return nullptr;
    }
    return open_redis_store(*p.url, redis::ClientOptions{kRedisTimeout, kRedisTimeout}, error);
  }
  if (spec.empty()) {
    if (error != nullptr) *error = "tlsrpt store: no path or redis:// URL";
    return nullptr;
  }
  return open_sqlite_store(std::string(spec), error);
}

}  // namespace tlsp::tlsrpt
