// table_reload.cpp — loading the table file into the table in force, and
// noticing when the file changes (table_reload.h has the contract).
#include "table_reload.h"

#include <exception>

namespace tlsp::relay {
namespace {

// The file-change check. A rename gives a new inode; a write in place
// (`cp` over the table) changes the size or the times. The change time
// counts too: `cp -p` puts the old modification time back, and the
// kernel cannot set the change time back.
bool same_file(const struct stat& a, const struct stat& b) {
  return a.st_ino == b.st_ino && a.st_dev == b.st_dev && a.st_size == b.st_size &&
         a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec &&
         a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

}  // namespace

// A refused file, or one rewritten later, has no effect on the table in
// force (the log line's `kept` is the truth).
void TableFile::load(std::string_view why) {
  struct stat st {};
  ::stat(path_.c_str(), &st);
  // Taken before the read, so a write still going on during it (a
  // half-written file, refused) shows as a change at the next check,
  // and a refused file is not retried until it changes.
  loaded_stat_ = st;
  std::shared_ptr<const DecisionTable> t;
  try {
    t = std::make_shared<const DecisionTable>(DecisionTable::open(path_));
  } catch (const std::exception& e) {
    if (!holder_.get()) throw;
    if (metrics_) metrics_->table_refused();
    log_.write(LogEvent::table, {{"result", "refused"},
                                 {"why", std::string(why)},
                                 {"path", path_},
                                 {"error", e.what()},
                                 {"kept", "previous table stays in force"}});
    return;
  }
  // In force before the line says so: whoever acts on the line (an
  // operator's script, a test) meets the new table.
  holder_.set(t);
  if (metrics_) metrics_->table_loaded(t->policy_name(), t->policy_version(), std::chrono::system_clock::now());
  log_.write(LogEvent::table, {{"result", "loaded"},
                               {"why", std::string(why)},
                               {"path", path_},
                               {"policy", std::string(t->policy_name())},
                               {"version", std::string(t->policy_version())},
                               {"domains", std::to_string(t->domain_count())},
                               {"peers", std::to_string(t->peer_count())}});
}

void TableFile::check_for_change() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return;
  if (!same_file(st, loaded_stat_)) load("file changed");
}

}  // namespace tlsp::relay
