// retry.cpp — durations, the retry schedule and queue expiry (tlsp/retry.h).
#include "tlsp/retry.h"

#include <xxhash.h>

#include <limits>
#include <stdexcept>
#include "tlsp/base/quote.h"

namespace tlsp {
namespace {

using base::ticked;

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::chrono::seconds> parse_duration(std::string_view text) {
  if (text.empty()) return std::nullopt;
  int64_t unit = 1;
  switch (text.back()) {
    case 's': unit = 1; text.remove_suffix(1); break;
    case 'm': unit = 60; text.remove_suffix(1); break;
    case 'h': unit = 3600; text.remove_suffix(1); break;
    case 'd': unit = 86400; text.remove_suffix(1); break;
    default: break;
  }
  if (text.empty()) return std::nullopt;
  const int64_t limit = kMaxDuration.count();
  int64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
    if (v > limit) return std::nullopt;  // checked per digit: no overflow
  }
  if (v > limit / unit) return std::nullopt;
  return std::chrono::seconds(v * unit);
}

std::string format_duration(std::chrono::seconds d) {
  int64_t s = d.count();
  if (s != 0 && s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s != 0 && s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s != 0 && s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

RetrySchedule::RetrySchedule() : RetrySchedule(*parse(kDefaultRetrySchedule)) {}

RetrySchedule::RetrySchedule(std::vector<std::chrono::seconds> steps) : steps_(std::move(steps)) {
  if (steps_.empty()) throw std::invalid_argument("the retry schedule is empty");
  if (steps_.size() > kMaxRetrySteps)
    throw std::invalid_argument("the retry schedule has more than " + std::to_string(kMaxRetrySteps) + " steps");
  for (auto s : steps_)
    if (s < kMinRetryStep || s > kMaxDuration)
      throw std::invalid_argument("retry step `" + format_duration(s) + "` is out of range (1s to " +
                                  format_duration(kMaxDuration) + ")");
}

std::optional<RetrySchedule> RetrySchedule::parse(std::string_view list, std::string* problem) {
  auto bad = [problem](std::string why) -> std::optional<RetrySchedule> {
    if (problem) *problem = std::move(why);
    return std::nullopt;
  };
  std::vector<std::chrono::seconds> steps;
  if (trim(list).empty()) return bad("the retry schedule is empty");
  size_t pos = 0;
  for (;;) {
    size_t comma = list.find(',', pos);
    std::string_view item = trim(list.substr(pos, comma == std::string_view::npos ? list.size() - pos : comma - pos));
    auto d = parse_duration(item);
    if (!d) return bad("bad retry step " + ticked(item) + "\nhelp: a number with s, m, h or d, like `5m`");
    if (*d < kMinRetryStep) return bad("retry step " + ticked(item) + " is shorter than 1s");
    steps.push_back(*d);
    if (steps.size() > kMaxRetrySteps)
      return bad("the retry schedule has more than " + std::to_string(kMaxRetrySteps) + " steps");
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return RetrySchedule(std::move(steps));
}

void RetrySchedule::set_jitter(double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction <= kMaxRetryJitter))
    throw std::invalid_argument("retry jitter must be between 0 and " + std::to_string(kMaxRetryJitter));
  jitter_ = fraction;
  seed_ = seed;
}

std::chrono::seconds RetrySchedule::delay(int attempts, std::string_view key) const {
  if (attempts <= 0) return std::chrono::seconds(0);
  size_t i = std::min(static_cast<size_t>(attempts), steps_.size()) - 1;
  int64_t base = steps_[i].count();
  if (jitter_ <= 0) return steps_[i];
  // A pure function of (seed, key, attempts): replays give the same times.
  uint64_t h = XXH3_64bits_withSeed(key.data(), key.size(), seed_ ^ (static_cast<uint64_t>(attempts) * 0x9E3779B97F4A7C15ULL));
  int64_t span = static_cast<int64_t>(static_cast<double>(base) * jitter_);
  int64_t extra = span > 0 ? static_cast<int64_t>(h % static_cast<uint64_t>(span + 1)) : 0;
  return std::chrono::seconds(base + extra);
}

int64_t RetrySchedule::next_attempt(int attempts, int64_t now, std::string_view key) const {
  int64_t d = delay(attempts, key).count();
  if (now > std::numeric_limits<int64_t>::max() - d) return std::numeric_limits<int64_t>::max();
  return now + d;
}

std::string RetrySchedule::to_string() const {
  std::string out;
  for (auto s : steps_) {
    if (!out.empty()) out += ',';
    out += format_duration(s);
  }
  return out;
}

bool expired(int64_t arrival, int64_t now, std::chrono::seconds lifetime) {
  if (now <= arrival) return lifetime.count() <= 0;
  // now > arrival: the difference fits in uint64 whatever the signs.
  uint64_t age = static_cast<uint64_t>(now) - static_cast<uint64_t>(arrival);
  return lifetime.count() <= 0 || age >= static_cast<uint64_t>(lifetime.count());
}

}  // namespace tlsp
