// tlsp/tlsrpt_store.h — where the relay's TLSRPT session records are added
// up: an embedded SQLite file under the relay's state directory (the
// default, no server), or Redis (`redis://HOST:PORT/DB`), shared by a fleet
// of relays sending for one organisation so that it makes ONE report per
// policy domain per day.
//
// Contract (every implementation; tests run the same cases on both):
// - record() is atomic and idempotent per SessionRecord::session_id: the
//   session counts once, also when the same record is written again after
//   a retry, a lost reply or a restart after kill -9. When it returns true
//   the record is durable (SQLite: committed; Redis: acknowledged).
// - summaries() reads what was counted for one policy domain on one UTC
//   day; domains() lists the policy domains with sessions that day.
// - claim_report() is the fleet's "who sends this report": the first
//   caller for (day, domain) gets true and its report_id is kept; later
//   callers (any relay sharing the store) get false and the kept id, so a
//   report is built and sent once, with one id, however many relays ask.
// - Environment failures (file, socket, server) are error results with a
//   message, never a crash; a store that cannot record says so and the
//   relay goes on delivering (a report is worth less than the mail).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/tlsrpt.h"

namespace tlsp::tlsrpt {

struct ReportClaim {
  bool claimed = false;   // this caller sends the report
  std::string report_id;  // the id the report has (this caller's, or the first claimer's)
};

// How long a store keeps a day: a report covers one UTC day and is sent the
// next; a week more leaves room for retries and for reading it by hand.
inline constexpr int kKeepDays = 30;
// Redis: session ids and a day's keys expire after this many days.
inline constexpr int kRedisKeepDays = 10;

class Store {
 public:
  virtual ~Store() = default;
  // False with `error` set when the record could not be stored.
  virtual bool record(const SessionRecord& r, std::string* error) = 0;
  virtual std::vector<std::string> domains(std::string_view day, std::string* error) = 0;
  virtual std::vector<PolicySummary> summaries(std::string_view day, std::string_view domain, std::string* error) = 0;
  virtual ReportClaim claim_report(std::string_view day, std::string_view domain, std::string_view report_id,
                                   std::string* error) = 0;
  // Forgets every day before `before_day` ("YYYY-MM-DD"): sessions,
  // counts and claims. SQLite deletes them; Redis keys expire by
  // themselves (kRedisKeepDays), so there it does nothing. The relay keeps
  // kKeepDays (docs/tlsrpt.md).
  virtual bool prune(std::string_view before_day, std::string* error) = 0;
  // What this store is, for logs and `--print-config` ("sqlite:/var/lib/tlsp/tlsrpt.db", "redis://...").
  virtual std::string describe() const = 0;
};

// Opens the store a `tlsrpt-store` setting names: "redis://HOST:PORT/DB"
// for Redis, else a path to the SQLite file (created with its tables when
// missing). Nothing, with `error` set, when it cannot be opened.
std::unique_ptr<Store> open_store(std::string_view spec, std::string* error);

}  // namespace tlsp::tlsrpt
