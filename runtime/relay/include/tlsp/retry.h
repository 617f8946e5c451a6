// tlsp/retry.h — when the relay tries a refused delivery again, and when it
// gives up (SPEC §3: a refusal is temporary, retried with a backoff; after
// the queue lifetime the message bounces).
//
// Contract:
//  * parse_duration() reads one duration: decimal digits with an optional
//    unit `s`, `m`, `h` or `d` (none = seconds), e.g. `90s`, `5m`, `2h`,
//    `5d`, `300`. Nothing else (no sign, no spaces, no fractions, no
//    compound `1h30m`); at most kMaxDuration. std::nullopt otherwise.
//  * RetrySchedule is a list of delays, `1m,5m,15m,30m,1h,2h,4h` (spaces
//    around commas allowed); the last delay repeats for ever. Every step is
//    at least kMinRetryStep, at most kMaxRetrySteps steps.
//  * next_attempt(attempts, now): `attempts` is the number of attempts made
//    so far (all refused). 0 means "never tried": now. After attempt k the
//    delay is step k-1 (the last step once k exceeds the list).
//  * Jitter (off by default) adds up to `fraction` of the delay, never
//    shortens it, and is a pure function of (seed, key, attempts): the same
//    entry gets the same time in a replay, different entries spread out.
//  * expired(arrival, now, lifetime): the message has been queued for at
//    least `lifetime`. Overflow-safe for any int64 inputs.
// Pure functions, no clock, no I/O.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tlsp {

inline constexpr std::chrono::seconds kMaxDuration{400LL * 24 * 3600};  // a bit more than a year
inline constexpr std::chrono::seconds kMinRetryStep{1};
inline constexpr size_t kMaxRetrySteps = 64;
inline constexpr double kMaxRetryJitter = 0.5;  // a fraction of the delay
inline constexpr std::string_view kDefaultRetrySchedule = "1m,5m,15m,30m,1h,2h,4h";
inline constexpr std::chrono::seconds kDefaultQueueLifetime{5LL * 24 * 3600};  // Postfix maximal_queue_lifetime

std::optional<std::chrono::seconds> parse_duration(std::string_view text);
// `90s`, `5m`, `2h`, `5d`: the largest unit that divides the value exactly.
std::string format_duration(std::chrono::seconds d);

class RetrySchedule {
 public:
  // The default schedule (kDefaultRetrySchedule), no jitter.
  RetrySchedule();
  // Throws std::invalid_argument (lower case, user text in backticks) for an
  // empty list, a step below kMinRetryStep or more than kMaxRetrySteps.
  explicit RetrySchedule(std::vector<std::chrono::seconds> steps);

  // std::nullopt and a one-line reason in `problem` for a bad list.
  static std::optional<RetrySchedule> parse(std::string_view list, std::string* problem = nullptr);

  // fraction in [0, kMaxRetryJitter]; 0 turns jitter off. Throws
  // std::invalid_argument outside that range.
  void set_jitter(double fraction, uint64_t seed = 0);

  // The delay after `attempts` refused attempts (attempts <= 0: zero).
  std::chrono::seconds delay(int attempts, std::string_view key = {}) const;
  // now + delay(attempts, key), saturating at INT64_MAX.
  int64_t next_attempt(int attempts, int64_t now, std::string_view key = {}) const;

  const std::vector<std::chrono::seconds>& steps() const { return steps_; }
  std::string to_string() const;  // `1m,5m,...`, parse() reads it back

 private:
  std::vector<std::chrono::seconds> steps_;
  double jitter_ = 0;
  uint64_t seed_ = 0;
};

bool expired(int64_t arrival, int64_t now, std::chrono::seconds lifetime);

}  // namespace tlsp
