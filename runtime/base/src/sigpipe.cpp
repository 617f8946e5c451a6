// SIGPIPE ignored once for the socket users (tlsp/base/sigpipe.h).
#include "tlsp/base/sigpipe.h"

#include <signal.h>

#include <mutex>

namespace tlsp::base {

void ignore_sigpipe_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction old {};
    if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {
      struct sigaction ign {};
      ign.sa_handler = SIG_IGN;
      sigemptyset(&ign.sa_mask);
      sigaction(SIGPIPE, &ign, nullptr);
    }
  });
}

}  // namespace tlsp::base
