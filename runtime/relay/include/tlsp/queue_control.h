// tlsp/queue_control.h — operating the relay's queue from outside
// (`tlsp queue ...`): what each operation does to an entry, the control
// protocol between a `tlsp queue` command and a running relay, and the same
// operations on a spool no relay holds (docs/spool.md, "Operating the
// queue").
//
// Contract:
//  * One owner per change. The spool (tlsp/spool.h) makes every change on
//    disk; the command never writes a spool file itself. Whoever holds the
//    spool's lock (SpoolLock) carries the change out: the running relay,
//    which also updates its in-memory queue, or, when no relay runs, the
//    command itself through apply_queue_request() on the same spool
//    functions. run_queue_request() decides which: the lock is free -> it
//    takes it and applies the request; the lock is held -> it asks the
//    relay over the control socket `<spool>/control`.
//  * Operations:
//      list              every queued entry (held ones too), oldest first
//      show ID           one entry's envelope and its header section, at
//                        most kMaxShownHeaderBytes; the body is never shown,
//                        only its size
//      flush [ID]        due now: the relay tries them at once; held
//                        entries are skipped (release them first). With no
//                        relay running nothing is written: the relay tries
//                        every entry that is not held when it starts
//      flush --domain D  the same for the entries with a recipient in D
//      hold ID           never delivered until released (the envelope's
//                        `held`, written by Spool::update()); the queue
//                        lifetime is not checked while held
//      release ID        not held, due now; an entry past its lifetime gets
//                        one attempt, then bounces if it is deferred again
//      delete ID         removed from the spool WITHOUT a bounce (as
//                        Postfix's `postsuper -d`)
//      delete --all --domain D   the same for every entry with a recipient
//                        in D
//    and the TLSRPT reports (tlsp/tlsrpt_dispatch.h; `tlsp tlsrpt send`):
//      tlsrpt-send DAY [DOMAIN]    the day's reports sent now, as the daily
//                        run sends them (claims respected)
//      tlsrpt-resend DAY [DOMAIN]  the same, a report already claimed sent
//                        again with its kept id (--force)
//      tlsrpt-mail N     a report's mailto: URIs queued as report mails by
//                        the relay itself; N payload bytes follow the line
//                        (TlsrptMailPayload, at most kMaxControlPayloadBytes)
//    With no relay running, the command does these itself under the lock.
//    An entry being delivered right now is not changed: hold, release and
//    delete by id are refused ("being delivered right now; try again when
//    the attempt ends"), flush and delete by domain skip it and say so.
//  * The protocol is one request line and one reply per connection, both
//    bounded (kMaxControlRequestBytes, kMaxControlReplyLineBytes,
//    kMaxControlReplyBytes) and timed (kControlRequestTimeout on the relay's
//    side, kControlReplyTimeout on the command's). Request:
//      `tlsp-queue/1 <op> [<argument>]` LF, op one of list, show, flush,
//      flush-domain, hold, release, delete, delete-domain, tlsrpt-send,
//      tlsrpt-resend, tlsrpt-mail; the argument an entry id (spool syntax),
//      a domain name (its normal form), `DAY[ DOMAIN]` or a byte count;
//      tlsrpt-mail's payload follows the LF, exactly N bytes, read within
//      the same kControlRequestTimeout.
//    Reply, LF-terminated lines, values percent-escaped as spool envelope
//    values are (no space, CR, LF or NUL inside a value):
//      `ok` | `error <text>`    first
//      `changed <n>`            entries changed
//      `entry <key>=<value> ...` one per entry (list, show)
//      `header <line>`          show: one header line, as stored
//      `headers-cut`            show: the header section was longer
//      `body-bytes <n>`         show: the size of the body, not shown
//      `note <text>`            what was skipped and why
//      `tlsrpt <key>=<value> ...` tlsrpt ops: one sending step
//                               (TlsrptSendEvent: result day domain
//                               report-id uri queue-id detail error failed)
//      `end`                    last; nothing may follow
//    Parsing is strict (known keys, each once where single, numbers without
//    sign or leading zeros), linear and bounded; a reply that breaks a rule
//    is refused as a whole.
//  * The control socket is AF_UNIX stream, mode 0600, in the spool
//    directory; the relay serves one connection at a time and answers only
//    root and its own uid (SO_PEERCRED).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tlsp/spool.h"
#include "tlsp/tlsrpt_dispatch.h"

namespace tlsp {

inline constexpr size_t kMaxControlRequestBytes = 1024;                  // the request line with its LF
inline constexpr size_t kMaxControlReplyLineBytes = size_t{8} << 20;     // one reply line (an entry's)
inline constexpr size_t kMaxControlReplyBytes = size_t{512} << 20;       // a whole reply (a long list)
inline constexpr size_t kMaxShownHeaderBytes = 64 * 1024;                // `show`: the header section
inline constexpr auto kControlRequestTimeout = std::chrono::seconds(5);  // relay: the request must come by then
inline constexpr auto kControlReplyTimeout = std::chrono::seconds(600);  // command: the whole reply (a big delete)
inline constexpr auto kControlConnectWait = std::chrono::seconds(10);    // command: a starting relay to answer
inline constexpr std::string_view kControlSocketName = "control";
// tlsrpt-mail: the payload (a gzipped report and its URIs); the reader's
// limit of a gzipped report in the outbox (tlsrpt::kMaxOutboxReportBytes).
inline constexpr size_t kMaxControlPayloadBytes = size_t{16} << 20;

enum class QueueOp {
  list, show, flush, flush_domain, hold, release, remove, remove_domain,
  tlsrpt_send, tlsrpt_resend, tlsrpt_mail
};

struct QueueRequest {
  QueueOp op = QueueOp::list;
  // an entry id, or a domain (normal form); "" for list and flush; tlsrpt
  // ops: "DAY" or "DAY DOMAIN"; tlsrpt-mail: the payload's size
  std::string argument;
  std::string payload;  // tlsrpt-mail: sent after the line
};

// tlsrpt-mail's payload: LF-terminated lines `domain D`, `submitter S`, one
// `to URI` per mailto: URI (1 to kMaxTlsrptUris), `report`, then the
// gzipped report to the end. Strict: that order, each value checked
// (domains in normal form, mailto: URIs by parse_tlsrpt_uri()).
struct TlsrptMailPayload {
  std::string domain, submitter;
  std::vector<TlsrptUri> to;
  std::string gzip;
};
std::string format_tlsrpt_mail_payload(const TlsrptMailPayload& p);
bool parse_tlsrpt_mail_payload(std::string_view text, TlsrptMailPayload& out, std::string& problem);
// The tlsrpt-mail request carrying `p`.
QueueRequest make_tlsrpt_mail_request(const TlsrptMailPayload& p);
// How many payload bytes follow the request's line (0 but for tlsrpt-mail).
size_t queue_request_payload_bytes(const QueueRequest& request);

// An entry as the queue tools show it.
struct QueueEntryStatus {
  QueueEntry entry;         // its envelope (entry.size: the message's bytes)
  bool delivering = false;  // an attempt is running right now
};

struct QueueReply {
  bool ok = true;
  std::string error;  // !ok: why, one line
  size_t changed = 0;
  std::vector<QueueEntryStatus> entries;
  std::vector<std::string> headers;  // show: the header lines, without line ends
  bool headers_cut = false;
  uint64_t body_bytes = 0;
  std::vector<std::string> notes;
  std::vector<TlsrptSendEvent> tlsrpt;  // tlsrpt ops: the steps, in order
};

// ---- the protocol (both ends, and the fuzz target) -----------------------

std::string_view queue_op_name(QueueOp op);
// Builds a request, checking its argument (an entry id; a domain, which is
// put in its normal form). nullopt with the reason otherwise.
std::optional<QueueRequest> make_queue_request(QueueOp op, std::string_view argument, std::string& problem);
std::string format_queue_request(const QueueRequest& request);  // with its LF (and payload)
// One request line (with or without its LF); nullopt with the reason.
std::optional<QueueRequest> parse_queue_request(std::string_view line, std::string& problem);
std::string format_queue_reply(const QueueReply& reply);
// The whole reply text; false with the reason when it breaks a rule above.
bool parse_queue_reply(std::string_view text, QueueReply& out, std::string& problem);

// ---- what an operation means (the relay and the offline path share it) ---

// Some recipient of `entry` is in `domain` (a normal-form domain name).
bool queue_entry_in_domain(const QueueEntry& entry, std::string_view domain);
// The header section of a message (up to the empty line), at most
// kMaxShownHeaderBytes, into reply.headers / headers_cut / body_bytes.
void show_message_headers(std::string_view data, QueueReply& reply);
// hold / release on one entry, as both executors apply it: false with the
// reason when it does not apply (already held, not held).
bool change_hold(QueueEntry& entry, bool hold, int64_t now, std::string& why);

// ---- executing a request -------------------------------------------------

// `request` on a spool nobody else changes: the caller holds its
// SpoolLock. The spool's own functions make every change.
QueueReply apply_queue_request(Spool& spool, const QueueRequest& request, int64_t now);

// What a `tlsp queue` command runs: asks the relay that holds the spool's
// lock, or takes the lock and applies the request itself (see above).
// Run as root, it first becomes the spool directory's owner, for good, so
// that what it changes stays the relay's (privileges.h, act_as_owner_of).
// Throws SpoolError when neither works (no spool, the relay does not
// answer within kControlConnectWait, a reply that breaks the protocol).
QueueReply run_queue_request(const std::string& spool_dir, const QueueRequest& request);

// The same choice for a caller that carries the request out itself when no
// relay runs (`tlsp tlsrpt send`): the relay's reply when a relay holds the
// lock; nothing when the lock was free, and `lock` then holds it for the
// caller. Run as root, it first becomes the spool's owner (as above).
// Throws SpoolError as run_queue_request().
std::optional<QueueReply> ask_relay_or_lock(const std::string& spool_dir, const QueueRequest& request,
                                            std::optional<SpoolLock>& lock);
// What a command run as root does before it writes into a spool itself
// (the https: outbox, say): it becomes the spool directory's owner for
// good, so what it writes stays the relay's. Nothing when not root.
// Throws SpoolError.
void act_as_spool_owner(const std::string& spool_dir);

// The control socket's path for a spool; throws SpoolError when it does not
// fit a sockaddr_un (107 bytes).
std::string control_socket_path(const std::string& spool_dir);

}  // namespace tlsp
