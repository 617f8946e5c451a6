// connection_cache.h — outbound SMTP sessions kept open for the next
// message to the same destination under the same rule (as Postfix's
// connection cache; RelayLimits::connection_cache_time and
// connection_reuse_limit). Not a public header.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "peer_tls.h"
#include "tlsp/engine.h"
#include "tlsp/stream.h"

namespace tlsp::relay {

// An outbound SMTP session that has just delivered, kept for the next
// message to the same destination under the same rule. The key holds the
// destination, the managed domain, the rule and the table generation; the
// outcome is the engine's verdict for this very session, so a reuse sends
// exactly what was approved.
struct CachedConnection {
  std::unique_ptr<Stream> stream;
  std::string host, address, auth;
  PeerTlsSummary tls;  // what the session's lines say of its TLS
  Outcome outcome;
  bool eightbitmime = false, size_ext = false;
  size_t uses = 0;
  std::chrono::steady_clock::time_point idle_since;
};

class ConnectionCache {
 public:
  std::optional<CachedConnection> take(const std::string& key);
  void put(const std::string& key, CachedConnection c);
  // Closes (QUIT) sessions idle for longer than `idle`; all of them when 0.
  void expire(std::chrono::seconds idle);

 private:
  std::mutex mu_;
  std::multimap<std::string, CachedConnection> idle_;
};

}  // namespace tlsp::relay
