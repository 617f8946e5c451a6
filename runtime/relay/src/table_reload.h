// table_reload.h — the decision table in force, and the file it is read
// from: loaded at start, on SIGHUP (Relay::reload) and when the file
// changes. Not a public header.
//
// Contract: the table in force changes only in TableFile::load(), and only
// to a table that DecisionTable::open() read into its own memory and
// validated; a refused file is logged (`table result=refused`) and the
// previous table stays. At start, with no table yet, the failure throws.
#pragma once

#include <sys/stat.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "metrics.h"
#include "tlsp/decision_table.h"
#include "tlsp/relay_log.h"

namespace tlsp::relay {

// The table every session and delivery reads; swapped whole, never edited.
class TableHolder {
 public:
  explicit TableHolder(std::shared_ptr<const DecisionTable> t) : table_(std::move(t)) {}
  std::shared_ptr<const DecisionTable> get() const {
    std::lock_guard lock(mu_);
    return table_;
  }
  // Which table: bumped by every set(), so state derived from one table
  // (a cached connection) is not used under another.
  uint64_t generation() const {
    std::lock_guard lock(mu_);
    return generation_;
  }
  void set(std::shared_ptr<const DecisionTable> t) {
    std::lock_guard lock(mu_);
    table_ = std::move(t);
    ++generation_;
  }

 private:
  mutable std::mutex mu_;
  std::shared_ptr<const DecisionTable> table_;
  uint64_t generation_ = 0;
};

// The table file (`--table`): loads it into `holder`, logging each load
// (and counting it in `metrics`, when given). Used from one thread (the
// relay's scheduler) once started.
class TableFile {
 public:
  TableFile(std::string path, TableHolder& holder, RelayLog& log, Metrics* metrics = nullptr)
      : path_(std::move(path)), holder_(holder), log_(log), metrics_(metrics) {}

  // `why` is the log line's reason ("start", "SIGHUP", "file changed").
  void load(std::string_view why);
  // Loads the file again when it changed since the last load().
  void check_for_change();

 private:
  const std::string path_;
  TableHolder& holder_;
  RelayLog& log_;
  Metrics* metrics_;
  struct stat loaded_stat_ {};
};

}  // namespace tlsp::relay
