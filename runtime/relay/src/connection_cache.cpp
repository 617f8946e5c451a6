// connection_cache.cpp — outbound sessions kept for reuse
// (connection_cache.h).
#include "connection_cache.h"

#include <vector>

#include "smtp_client.h"

namespace tlsp::relay {

std::optional<CachedConnection> ConnectionCache::take(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = idle_.find(key);
  if (it == idle_.end()) return std::nullopt;
  CachedConnection c = std::move(it->second);
  idle_.erase(it);
  return c;
}

void ConnectionCache::put(const std::string& key, CachedConnection c) {
  c.idle_since = std::chrono::steady_clock::now();
  std::lock_guard lock(mu_);
  idle_.emplace(key, std::move(c));
}

void ConnectionCache::expire(std::chrono::seconds idle) {
  std::vector<CachedConnection> closing;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (auto it = idle_.begin(); it != idle_.end();) {
      if (idle.count() == 0 || now - it->second.idle_since > idle) {
        closing.push_back(std::move(it->second));
        it = idle_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (CachedConnection& c : closing) command(*c.stream, "QUIT", std::chrono::seconds(2));
}

}  // namespace tlsp::relay
