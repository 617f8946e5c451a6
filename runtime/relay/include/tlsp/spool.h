// tlsp/spool.h — the relay's crash-safe message queue (SPEC §6): a message
// acknowledged with 250 after DATA is on disk, fsync'd, and stays there until
// it is delivered, bounced, or moved to the failed area for the operator.
//
// On-disk layout (docs/spool.md has the full story):
//
//   <directory>/tmp/            work area; anything here at start-up is an
//                               unfinished store() and is removed
//   <directory>/queue/<batch>/  one committed SMTP transaction (a "batch")
//       data                    the message, stored once, shared by the batch
//       <n>.env                 the envelope of entry <batch>.<n> (one per
//                               destination); `<n>.env.tmp` is an update() in
//                               progress and is removed at start-up
//   <directory>/failed/         kept for the operator, never read back:
//       <id>.env <id>.dat <id>.reason
//
// A batch name is `<microseconds hex>-<pid hex>-<counter hex>`; an entry id
// is `<batch>.<n>` (n decimal, from 0). Both are file-name safe.
//
// Commit protocol of store(): the data and every envelope are written into
// tmp/<batch>/ and fsync'd, the batch directory is fsync'd, then the whole
// directory is renamed into queue/ (ONE rename: the commit point) and
// queue/ is fsync'd. So a transaction is all-or-nothing: after a crash
// either every entry of it is in the queue, complete, or none is (and the
// client, which never got its 250, sends it again). Entries leave the batch
// one by one (remove, move_to_failed); the last one to leave removes the
// data and the directory. A batch directory without envelopes is therefore
// finished and is removed at start-up.
//
// Envelope format (version 1): LF-terminated `key: value` lines, values
// percent-escaped (every byte outside 0x21..0x7E and `%` become %XX, so a
// value never holds a space, a CR, a LF or a NUL), the first line
// `tlsp-spool-envelope: 1`, the last line `checksum: <XXH3-64 hex>` of all
// the bytes before it. Parsing is strict: known keys only, required keys
// exactly once, bounded sizes; a torn or corrupted envelope is detected and
// the entry goes to failed/ with a reason.
//
// Threads: every method may be called concurrently for different entries
// (store() from many SMTP sessions, update/remove from delivery workers).
// Calls for the same entry must not overlap (the relay owns an entry in one
// worker at a time). recover() runs alone, before anything else.
//
// Errors: the environment's (disk full, permissions, a corrupt file) throw
// SpoolError with a one-line lower-case message naming the path; the
// caller's mistakes (an address with CR/LF/NUL, too many recipients, an
// unknown id) throw SpoolError too, before anything is written.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tlsp/policy_model.h"

namespace tlsp {

// Limits on what an envelope may hold (checked on write and on read).
inline constexpr size_t kMaxSpoolAddressBytes = 1024;   // one address or ORCPT (RFC 5321 path: 256)
inline constexpr size_t kMaxSpoolFieldBytes = 1024;     // domain, host, HELO, client address
inline constexpr size_t kMaxSpoolTextBytes = 4096;      // last_error, a reply: longer text is cut
inline constexpr size_t kMaxSpoolRecipients = 1000;     // per entry (Postfix smtpd_recipient_limit)
inline constexpr size_t kMaxSpoolEnvelopeBytes = 16 * 1024 * 1024;  // an envelope file on read
inline constexpr size_t kMaxSpoolEntriesPerStore = 1000;            // entries of one transaction

// Version 1 is every entry that is neither held nor a TLSRPT report;
// version 2 adds `held: 1`; version 3 adds `tlsrpt-report: 1` (and may hold
// `held: 1` too). An envelope is written in the lowest version that holds
// it, so a spool without such entries stays readable by a relay of a
// previous version.
inline constexpr int kSpoolEnvelopeVersion = 1;
inline constexpr int kSpoolHeldEnvelopeVersion = 2;
inline constexpr int kSpoolReportEnvelopeVersion = 3;

// An original recipient (RFC 3461 ORCPT) as given by the client, for the
// bounce's Original-Recipient field.
struct SpoolRecipient {
  std::string address;
  std::string orcpt;  // e.g. `rfc822;user@example.com`, as given
};

struct QueueEntry {
  std::string id;                          // `<batch>.<n>`, set by Spool::store
  std::string mail_from;                   // "" = null sender (a bounce: never bounced again)
  std::vector<std::string> recipients;     // still pending
  Direction direction = Direction::outbound;
  std::string managed_domain;              // the operator's domain this mail is for/from
  std::string destination;                 // outbound: the recipient domain; inbound: "host:port" next hop
  std::string client_address, client_helo, sender_peer;  // how it arrived (inbound rule input, logs)
  bool body_8bit = false;
  int64_t arrival = 0;                     // unix seconds
  // Not stored: ms since the epoch when this process accepted it, for the
  // log's delay= (docs/logs.md); 0: only `arrival` is known (recovered).
  int64_t arrival_ms = 0;
  int attempts = 0;
  int64_t next_attempt = 0;
  std::string last_error;                  // last refusal, for the bounce and logs (cut at kMaxSpoolTextBytes)
  // address, reply: permanent failures awaiting the bounce (reply cut at kMaxSpoolTextBytes)
  std::vector<std::pair<std::string, std::string>> failed_recipients;
  std::vector<SpoolRecipient> orcpts;      // ORCPT per recipient, where the client gave one
  bool held = false;                       // on hold (`tlsp queue hold`): never delivered until released
  // A TLSRPT report mail (tlsp/tlsrpt_send.h): RFC 8460 §3, "reports MUST
  // NOT be held to the policy": delivered even when TLS to its recipient
  // fails (in plaintext if need be), and its sessions are not recorded for
  // the next report. Set when the entry is made, never changed.
  bool tlsrpt_report = false;
  // The message's size in bytes: set by store(), recover(), scan() and
  // read_entry() from the envelope's data-bytes; not a field of its own.
  uint64_t size = 0;

  // The ORCPT given for `address`, or "".
  std::string orcpt_of(std::string_view address) const;
};

class SpoolError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Spool {
 public:
  // Creates <directory>, tmp/, queue/ and failed/ as needed (mode 0700).
  // Throws SpoolError.
  explicit Spool(std::string directory);

  // Stores the data and every entry (one SMTP transaction) and returns only
  // when all is on disk (see the commit protocol above). Assigns the ids and
  // returns the entries as stored. Throws SpoolError, having written nothing
  // that recover() would return (the caller replies 451 4.3.0).
  std::vector<QueueEntry> store(std::vector<QueueEntry> entries, std::string_view data);

  // At start-up, before any other call: every committed entry, ordered by
  // arrival then id. Removes unfinished work (tmp/, `*.env.tmp`, batches
  // without envelopes). An envelope that cannot be parsed, or whose data is
  // missing or of the wrong size, goes to failed/ with a reason file; each
  // such event (and each stray file left alone) is one line in `problems`.
  std::vector<QueueEntry> recover(std::vector<std::string>* problems = nullptr);

  // Every committed entry as it is on disk, ordered as recover() orders
  // them, changing nothing: for `tlsp queue list` while the spool is
  // locked by the caller. An envelope that cannot be read is one line in
  // `problems` (recover() would move it to failed/), unfinished work is
  // skipped.
  std::vector<QueueEntry> scan(std::vector<std::string>* problems = nullptr) const;
  // One queued entry as on disk; nullopt when it is not queued. Throws
  // SpoolError for a bad id or an envelope that cannot be read.
  std::optional<QueueEntry> read_entry(const std::string& id) const;

  // The message of a queued entry; checks its size and checksum against the
  // envelope. Throws SpoolError.
  std::string read_data(const std::string& id) const;

  // Rewrites the mutable fields of a queued entry (recipients, attempts,
  // next_attempt, last_error, failed_recipients, orcpts, held) atomically: temp
  // file, fsync, rename, directory fsync. The other fields are kept as
  // stored, whatever `entry` says. Throws SpoolError (also for an id that
  // is not queued).
  void update(const QueueEntry& entry);

  // Delivered or bounced: the envelope goes first (so a crash never leaves
  // an entry without data), then, when it was the batch's last, the data.
  // An id that is not queued is not an error (remove is idempotent).
  void remove(const std::string& id);

  // Keeps the entry for the operator: failed/<id>.dat (the data), a
  // failed/<id>.reason file, then failed/<id>.env; the entry leaves the
  // queue. Works on envelopes that cannot be parsed too.
  void move_to_failed(const std::string& id, std::string_view reason);

  // Entries in the queue (a directory scan: for status and logs).
  size_t queued_count() const;
  const std::string& directory() const { return directory_; }

  // ---- test hooks --------------------------------------------------------
  // Number of fsync() calls made by this Spool (files and directories).
  uint64_t fsync_calls() const { return fsync_calls_.load(); }
  // Called at each named step of store(), update(), remove() and
  // move_to_failed() (docs/spool.md lists them), so a test can crash the
  // process there (fork + _exit / SIGKILL). Set before concurrent use.
  void set_step_hook(std::function<void(std::string_view step)> hook) { step_hook_ = std::move(hook); }

 private:
  void step(std::string_view name) const;
  // tlsp/base/atomic_file.h's steps, each one fsync, counted in fsync_calls_.
  void fsync_dir(const std::string& path) const;
  bool fsync_dir_if_present(const std::string& path) const;  // false: the directory is gone
  void write_file_synced(const std::string& path, std::string_view content, bool exclusive) const;
  std::string next_batch_name();
  std::string batch_dir(const std::string& id, std::string* n) const;
  void remove_batch_if_finished(const std::string& batch_path) const;

  std::string directory_;
  std::string tmp_, queue_, failed_;
  std::atomic<uint64_t> counter_{0};
  mutable std::atomic<uint64_t> fsync_calls_{0};
  std::function<void(std::string_view)> step_hook_;
};

// The one process that may change a spool: an exclusive flock(2) on
// `<directory>/lock`, held while the object lives (the kernel drops it when
// the process dies, also by SIGKILL). The relay holds it while it runs; a
// `tlsp queue` command holds it to change the spool when no relay runs, and
// otherwise asks the relay (tlsp/queue_control.h). The file is created
// 0644 and opened read-only, so any user may try the lock; its contents
// are nothing.
class SpoolLock {
 public:
  // The lock, or nullopt when another process holds it. Throws SpoolError
  // when the spool directory does not exist or the file cannot be opened.
  static std::optional<SpoolLock> try_acquire(const std::string& directory);
  // Tries until `wait` has passed (a `tlsp queue` command holds the lock
  // for a moment while no relay runs).
  static std::optional<SpoolLock> acquire(const std::string& directory, std::chrono::milliseconds wait);
  SpoolLock(SpoolLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  SpoolLock& operator=(SpoolLock&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  SpoolLock(const SpoolLock&) = delete;
  ~SpoolLock();
  static std::string path_in(const std::string& directory) { return directory + "/lock"; }

 private:
  explicit SpoolLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

// The envelope text of `entry` (format above), with the data's size and
// checksum; and its strict inverse. Exposed for tests and tools.
// serialize throws SpoolError for an entry that cannot be written.
std::string serialize_envelope(const QueueEntry& entry, uint64_t data_bytes, uint64_t data_checksum);
struct ParsedEnvelope {
  QueueEntry entry;
  uint64_t data_bytes = 0;
  uint64_t data_checksum = 0;
};
// Returns false and a one-line reason when `text` is not a valid envelope.
bool parse_envelope(std::string_view text, ParsedEnvelope& out, std::string& problem);

}  // namespace tlsp
