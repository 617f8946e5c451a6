// PLACEHOLDER until the i12-store branch merges: it defines open_store()
// (SQLite and Redis, tlsp/tlsrpt_store.h), and this file is then deleted
// (a second definition does not link, so it cannot be forgotten). Until
// then `tlsp tlsrpt report` says that no store can be opened.
#include "tlsp/tlsrpt_store.h"

namespace tlsp::tlsrpt {

std::unique_ptr<Store> open_store(std::string_view spec, std::string* error) {
  if (error) *error = "cannot open the TLSRPT store `" + std::string(spec) + "`: this build has no store yet";
  return nullptr;
}

}  // namespace tlsp::tlsrpt
