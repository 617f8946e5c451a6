// stores.h — the two Store implementations behind open_store()
// (tlsrpt_store.h). Internal to the tlsrpt module.
#pragma once

#include <memory>
#include <string>

#include "tlsp/redis_client.h"
#include "tlsp/tlsrpt_store.h"

namespace tlsp::tlsrpt {

// SQLite: waits up to this long for another writer (another relay, `tlsp
// tlsrpt report`) to finish a transaction before an error.
inline constexpr int kSqliteBusyTimeoutMs = 5000;
// Redis: the connect and command timeouts (redis_client.h). A dead server
// costs a record() at most about this long, and a hung one too.
inline constexpr std::chrono::milliseconds kRedisTimeout{1000};

std::unique_ptr<Store> open_sqlite_store(const std::string& path, std::string* error);
std::unique_ptr<Store> open_redis_store(const redis::RedisUrl& url, redis::ClientOptions options, std::string* error);

}  // namespace tlsp::tlsrpt
