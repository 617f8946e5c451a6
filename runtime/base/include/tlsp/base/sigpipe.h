// tlsp/base/sigpipe.h — a write to a socket whose peer has gone raises
// SIGPIPE, which ends the process by default. Libraries that write to
// sockets with write() (OpenSSL's socket BIO, hiredis) cannot be told
// MSG_NOSIGNAL, so tlsp's socket users (Stream, RedisClient) call this
// before their first connection: a vanished peer is then an I/O error,
// never the end of the process, as mail servers do.
//
// Contract: the first call sets SIGPIPE to ignored, and only when it still
// has the default disposition (a program that installed its own handler
// keeps it); later calls do nothing. Thread-safe.
#pragma once

namespace tlsp::base {

void ignore_sigpipe_once();

}  // namespace tlsp::base
