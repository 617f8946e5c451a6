// sqlite_store.cpp — the embedded TLSRPT store: one SQLite file (the
// relay's default is <spool>/tlsrpt.db, tlsrpt_store_spec()).
//
// Durability: WAL journal with synchronous=FULL, so the commit that
// record() waits for is on disk (fsync of the WAL) before it returns true;
// NORMAL would let a power loss take back the last commits, and the
// contract says a true record() is durable. A kill -9 loses nothing
// either way: SQLite's transaction is all or nothing.
//
// Idempotence: `sessions` is keyed by the session id; record() inserts it
// (INSERT OR IGNORE) and adds to the counters in ONE transaction (BEGIN
// IMMEDIATE), so a session id already there counts nothing more.
//
// Sharing: a relay and `tlsp tlsrpt report`, or two Store objects, may use
// the file at once: every transaction takes the write lock at its start
// and waits up to kSqliteBusyTimeoutMs for it. One connection per Store,
// used under a mutex by the relay's threads.
//
// Schema version 1 (PRAGMA user_version), the file marked as tlsp's by
// PRAGMA application_id: a file that is not a SQLite database, another
// program's database, or another version is refused with a message and
// never changed.
#include <sqlite3.h>

#include <mutex>

#include "store_codec.h"
#include "stores.h"

namespace tlsp::tlsrpt {
namespace {

constexpr int kApplicationId = 0x746c7372;  // "tlsr"
constexpr int kSchemaVersion = 1;

constexpr const char* kSchema = R"sql(
CREATE TABLE sessions (session_id TEXT PRIMARY KEY, day TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX sessions_day ON sessions (day);
CREATE TABLE policies (id INTEGER PRIMARY KEY, canonical BLOB NOT NULL UNIQUE);
CREATE TABLE details (id INTEGER PRIMARY KEY, canonical BLOB NOT NULL UNIQUE);
CREATE TABLE policy_counts (
  day TEXT NOT NULL, domain TEXT NOT NULL, policy_id INTEGER NOT NULL REFERENCES policies (id),
  successful INTEGER NOT NULL DEFAULT 0, failed INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, domain, policy_id)) WITHOUT ROWID;
CREATE TABLE failure_counts (
  day TEXT NOT NULL, domain TEXT NOT NULL, policy_id INTEGER NOT NULL REFERENCES policies (id),
  detail_id INTEGER NOT NULL REFERENCES details (id), sessions INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (day, domain, policy_id, detail_id)) WITHOUT ROWID;
CREATE TABLE claims (day TEXT NOT NULL, domain TEXT NOT NULL, report_id TEXT NOT NULL,
  PRIMARY KEY (day, domain)) WITHOUT ROWID;
)sql";

class Statement {
 public:
  Statement(sqlite3* db, const char* sql) { rc_ = sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Statement() { sqlite3_finalize(s_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  bool ok() const { return rc_ == SQLITE_OK; }
  Statement& bind(int i, std::string_view v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind_text(int i, std::string_view v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  int step() { return sqlite3_step(s_); }
  int64_t integer(int col) { return sqlite3_column_int64(s_, col); }
  std::string text(int col) {
    const void* p = sqlite3_column_blob(s_, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), sqlite3_column_bytes(s_, col));
  }

 private:
  sqlite3_stmt* s_ = nullptr;
  int rc_ = SQLITE_ERROR;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}
  ~SqliteStore() override { sqlite3_close_v2(db_); }

  bool record(const SessionRecord& r, std::string* error) override {
    std::lock_guard lock(mutex_);
    const std::string day = utc_day(r.time);
    const std::string policy = codec::encode_policy(r.policy);
    if (!exec("BEGIN IMMEDIATE", error)) return false;
    auto fail = [&] {
      set_error(error, "record");
      exec("ROLLBACK", nullptr);
      return false;
    };
    Statement insert(db_, "INSERT OR IGNORE INTO sessions (session_id, day) VALUES (?, ?)");
    if (!insert.ok() || insert.bind_text(1, r.session_id).bind_text(2, day).step() != SQLITE_DONE) return fail();
    if (sqlite3_changes(db_) == 0) return exec("COMMIT", error);  // counted already
    const std::optional<int64_t> policy_id = row_id("policies", policy);
    if (!policy_id) return fail();
    Statement count(db_,
                    "INSERT INTO policy_counts (day, domain, policy_id, successful, failed) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT DO UPDATE SET successful = successful + excluded.successful, "
                    "failed = failed + excluded.failed");
    if (!count.ok() || count.bind_text(1, day)
                               .bind_text(2, r.policy.domain)
                               .bind(3, *policy_id)
                               .bind(4, int64_t{r.success ? 1 : 0})
                               .bind(5, int64_t{r.success ? 0 : 1})
                               .step() != SQLITE_DONE)
      return fail();
    if (!r.success) {
      const std::optional<int64_t> detail_id = row_id("details", codec::encode_detail(r.failure));
      if (!detail_id) return fail();
      Statement detail(db_,
                       "INSERT INTO failure_counts (day, domain, policy_id, detail_id, sessions) VALUES (?, ?, ?, ?, 1) "
                       "ON CONFLICT DO UPDATE SET sessions = sessions + 1");
      if (!detail.ok() ||
          detail.bind_text(1, day).bind_text(2, r.policy.domain).bind(3, *policy_id).bind(4, *detail_id).step() !=
              SQLITE_DONE)
        return fail();
    }
    if (!exec("COMMIT", error)) {
      exec("ROLLBACK", nullptr);
      return false;
    }
    return true;
  }

  std::vector<std::string> domains(std::string_view day, std::string* error) override {
    std::lock_guard lock(mutex_);
    std::vector<std::string> out;
    Statement q(db_, "SELECT DISTINCT domain FROM policy_counts WHERE day = ? ORDER BY domain");
    if (!q.ok()) return set_error(error, "domains"), out;
    q.bind_text(1, day);
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) out.push_back(q.text(0));
    if (rc != SQLITE_DONE) return set_error(error, "domains"), std::vector<std::string>{};
    return out;
  }

  std::vector<PolicySummary> summaries(std::string_view day, std::string_view domain, std::string* error) override {
    std::lock_guard lock(mutex_);
    std::vector<PolicySummary> out;
    // One read transaction: the counts and the details agree.
    if (!exec("BEGIN", error)) return out;
    Statement q(db_,
                "SELECT p.id, p.canonical, c.successful, c.failed FROM policy_counts c JOIN policies p ON p.id = "
                "c.policy_id WHERE c.day = ? AND c.domain = ? ORDER BY p.id");
    auto fail = [&](const char* what) {
      if (error != nullptr) *error = "tlsrpt store " + describe() + ": " + what;
      exec("ROLLBACK", nullptr);
      return std::vector<PolicySummary>{};
    };
    if (!q.ok()) return fail(sqlite3_errmsg(db_));
    q.bind_text(1, day).bind_text(2, domain);
    int rc;
    while ((rc = q.step()) == SQLITE_ROW) {
      std::optional<Policy> p = codec::decode_policy(q.text(1));
      if (!p) return fail("a policy row is not in tlsp's canonical form");
      PolicySummary s{std::move(*p), static_cast<uint64_t>(q.integer(2)), static_cast<uint64_t>(q.integer(3)), {}};
      Statement details(db_,
                        "SELECT d.canonical, f.sessions FROM failure_counts f JOIN details d ON d.id = f.detail_id "
                        "WHERE f.day = ? AND f.domain = ? AND f.policy_id = ? ORDER BY d.id");
      details.bind_text(1, day).bind_text(2, domain).bind(3, q.integer(0));
      int drc;
      while ((drc = details.step()) == SQLITE_ROW) {
        std::optional<FailureDetail> f = codec::decode_detail(details.text(0));
        if (!f) return fail("a failure detail row is not in tlsp's canonical form");
        s.failures.emplace_back(std::move(*f), static_cast<uint64_t>(details.integer(1)));
      }
      if (drc != SQLITE_DONE) return fail(sqlite3_errmsg(db_));
      out.push_back(std::move(s));
    }
    if (rc != SQLITE_DONE) return fail(sqlite3_errmsg(db_));
    exec("COMMIT", nullptr);
    return out;
  }

  ReportClaim claim_report(std::string_view day, std::string_view domain, std::string_view report_id,
                           std::string* error) override {
    std::lock_guard lock(mutex_);
    ReportClaim c;
    if (!exec("BEGIN IMMEDIATE", error)) return c;
    Statement ins(db_, "INSERT OR IGNORE INTO claims (day, domain, report_id) VALUES (?, ?, ?)");
    if (!ins.ok() || ins.bind_text(1, day).bind_text(2, domain).bind_text(3, report_id).step() != SQLITE_DONE) {
      set_error(error, "claim");
      exec("ROLLBACK", nullptr);
      return c;
    }
    const bool claimed = sqlite3_changes(db_) == 1;
    Statement q(db_, "SELECT report_id FROM claims WHERE day = ? AND domain = ?");
    if (!q.ok() || q.bind_text(1, day).bind_text(2, domain).step() != SQLITE_ROW) {
      set_error(error, "claim");
      exec("ROLLBACK", nullptr);
      return c;
    }
    const std::string kept = q.text(0);
    if (!exec("COMMIT", error)) return c;
    c.claimed = claimed;
    c.report_id = kept;
    return c;
  }

  bool prune(std::string_view before_day, std::string* error) override {
    std::lock_guard lock(mutex_);
    if (!exec("BEGIN IMMEDIATE", error)) return false;
    for (const char* sql : {"DELETE FROM sessions WHERE day < ?", "DELETE FROM policy_counts WHERE day < ?",
                            "DELETE FROM failure_counts WHERE day < ?", "DELETE FROM claims WHERE day < ?"}) {
      Statement s(db_, sql);
      if (!s.ok() || s.bind_text(1, before_day).step() != SQLITE_DONE) {
        set_error(error, "prune");
        exec("ROLLBACK", nullptr);
        return false;
      }
    }
    if (!exec("DELETE FROM policies WHERE id NOT IN (SELECT policy_id FROM policy_counts); "
              "DELETE FROM details WHERE id NOT IN (SELECT detail_id FROM failure_counts); COMMIT",
              error)) {
      exec("ROLLBACK", nullptr);
      return false;
    }
    return true;
  }

  std::string describe() const override { return "sqlite:" + path_; }

 private:
  bool exec(const char* sql, std::string* error) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK) return true;
    if (error != nullptr) *error = "tlsrpt store " + describe() + ": " + sqlite3_errmsg(db_);
    return false;
  }
  void set_error(std::string* error, const char* doing) {
    if (error != nullptr) *error = "tlsrpt store " + describe() + ": " + doing + ": " + sqlite3_errmsg(db_);
  }
  // The id of the row of `table` with this canonical form, made if new.
  std::optional<int64_t> row_id(const char* table, const std::string& canonical) {
    const std::string ins = std::string("INSERT OR IGNORE INTO ") + table + " (canonical) VALUES (?)";
    Statement i(db_, ins.c_str());
    if (!i.ok() || i.bind(1, canonical).step() != SQLITE_DONE) return std::nullopt;
    const std::string sel = std::string("SELECT id FROM ") + table + " WHERE canonical = ?";
    Statement s(db_, sel.c_str());
    if (!s.ok() || s.bind(1, canonical).step() != SQLITE_ROW) return std::nullopt;
    return s.integer(0);
  }

  std::string path_;
  sqlite3* db_;
  std::mutex mutex_;
};

int pragma_int(sqlite3* db, const char* sql, bool* ok) {
  sqlite3_stmt* s = nullptr;
  int v = 0;
  *ok = sqlite3_prepare_v2(db, sql, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW;
  if (*ok) v = sqlite3_column_int(s, 0);
  sqlite3_finalize(s);
  return v;
}

}  // namespace

std::unique_ptr<Store> open_sqlite_store(const std::string& path, std::string* error) {
  auto fail = [&](sqlite3* db, const std::string& what) -> std::unique_ptr<Store> {
    if (error != nullptr) *error = "tlsrpt store `" + path + "`: " + what;
    sqlite3_close_v2(db);
    return nullptr;
  };
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr) !=
      SQLITE_OK)
    return fail(db, db != nullptr ? sqlite3_errmsg(db) : "out of memory");
  sqlite3_busy_timeout(db, kSqliteBusyTimeoutMs);
  bool ok = false;
  // The first read: a file that is not a database fails here.
  const int app = pragma_int(db, "PRAGMA application_id", &ok);
  if (!ok) return fail(db, std::string("not a tlsp TLSRPT store: ") + sqlite3_errmsg(db));
  const int version = pragma_int(db, "PRAGMA user_version", &ok);
  const int objects = ok ? pragma_int(db, "SELECT count(*) FROM sqlite_schema", &ok) : 0;
  if (!ok) return fail(db, std::string("not a tlsp TLSRPT store: ") + sqlite3_errmsg(db));
  if (app == 0 && objects > 0)
    return fail(db, "not a tlsp TLSRPT store (a SQLite database of another program); refusing to change it");
  if (app != 0 && app != kApplicationId)
    return fail(db, "not a tlsp TLSRPT store (application_id " + std::to_string(app) + ")");
  if (app == kApplicationId && version != kSchemaVersion)
    return fail(db, "schema version " + std::to_string(version) + " is not the version this tlsp reads (" +
                        std::to_string(kSchemaVersion) + ")");
  if (sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON", nullptr, nullptr,
                   nullptr) != SQLITE_OK)
    return fail(db, sqlite3_errmsg(db));
  if (app == 0) {
    // A new file: the schema and its marks in one transaction, so that a
    // crash leaves either nothing or a whole store. Another process may
    // have made it meanwhile: then the marks are there and this is skipped.
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return fail(db, sqlite3_errmsg(db));
    const int again = pragma_int(db, "PRAGMA application_id", &ok);
    if (ok && again == 0) {
      const std::string create = std::string(kSchema) + "PRAGMA application_id=" + std::to_string(kApplicationId) +
                                 "; PRAGMA user_version=" + std::to_string(kSchemaVersion) + ";";
      if (sqlite3_exec(db, create.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK) {
        std::string what = sqlite3_errmsg(db);
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return fail(db, "cannot create the tables: " + what);
      }
    }
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) return fail(db, sqlite3_errmsg(db));
  }
  return std::make_unique<SqliteStore>(path, db);
}

}  // namespace tlsp::tlsrpt
