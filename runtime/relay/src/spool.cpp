// spool.cpp — the store of the relay's crash-safe queue (tlsp/spool.h,
// docs/spool.md): store (the commit of a batch), update, remove, the move
// to the failed area, and reading a message back. The envelope format is
// spool_format.cpp's, the start-up scan spool_recovery.cpp's.
//
// Every durable change follows the same rule: write a file under a name
// nobody reads, fsync it, rename it into place, fsync the directory that
// holds the new name (tlsp/base/atomic_file.h's steps, one fsync each, with
// a named crash point between them). The one exception is removal, which
// only needs the directory fsync'd after the unlink. Linux-specific where
// it matters: renameat2(RENAME_NOREPLACE) for the commit of a batch, so two
// batches can never merge even if their names collided.
#include "tlsp/spool.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "spool_files.h"
#include "spool_format.h"
#include "tlsp/base/atomic_file.h"
#include "tlsp/base/quote.h"

namespace tlsp {

using namespace spool;

namespace {

namespace fs = std::filesystem;

using base::ticked;

// A failed step of tlsp/base/atomic_file.h as the spool's own error, which
// store() rolls back on and the relay reports.
template <typename Step>
void as_spool_error(Step&& step) {
  try {
    step();
  } catch (const base::FileError& e) {
    throw SpoolError(e.what());
  }
}

std::string one_line(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  return out;
}


}  // namespace

Spool::Spool(std::string directory) : directory_(std::move(directory)) {
  if (directory_.empty()) throw SpoolError("the spool directory is not set");
  std::error_code ec;
  fs::create_directories(directory_, ec);
  if (ec || !is_directory(directory_))
    throw SpoolError("cannot create the spool directory `" + directory_ + "`: " + ec.message());
  tmp_ = directory_ + "/tmp";
  queue_ = directory_ + "/queue";
  failed_ = directory_ + "/failed";
  make_dir(tmp_);
  make_dir(queue_);
  make_dir(failed_);
  fsync_dir(directory_);
}

void Spool::step(std::string_view name) const {
  if (step_hook_) step_hook_(name);
}

void Spool::fsync_dir(const std::string& path) const {
  as_spool_error([&] { base::sync_directory(path); });
  fsync_calls_.fetch_add(1);
}

bool Spool::fsync_dir_if_present(const std::string& path) const {
  try {
    base::sync_directory(path);
  } catch (const base::FileError& e) {
    if (e.error() == ENOENT) return false;
    throw SpoolError(e.what());
  }
  fsync_calls_.fetch_add(1);
  return true;
}

void Spool::write_file_synced(const std::string& path, std::string_view content, bool exclusive) const {
  as_spool_error([&] { base::write_file_synced(path, content, 0600, exclusive); });
  fsync_calls_.fetch_add(1);
}

std::string Spool::next_batch_name() {
  auto usec = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  char buf[kMaxBatchNameBytes];
  std::snprintf(buf, sizeof buf, "%llx-%x-%llx", static_cast<unsigned long long>(usec),
                static_cast<unsigned>(::getpid()), static_cast<unsigned long long>(counter_.fetch_add(1)));
  return buf;
}

std::string Spool::batch_dir(const std::string& id, std::string* n) const {
  if (!valid_entry_id(id)) throw SpoolError("bad spool entry id " + ticked(id));
  size_t dot = id.rfind('.');
  if (n) *n = id.substr(dot + 1);
  return queue_ + "/" + id.substr(0, dot);
}

std::vector<QueueEntry> Spool::store(std::vector<QueueEntry> entries, std::string_view data) {
  if (entries.empty()) throw SpoolError("nothing to store: no entries");
  if (entries.size() > kMaxSpoolEntriesPerStore)
    throw SpoolError("more than " + std::to_string(kMaxSpoolEntriesPerStore) + " entries in one message");
  for (const auto& e : entries) {
    if (e.recipients.empty()) throw SpoolError("cannot store an entry without recipients");
    if (auto p = entry_problem(e)) throw SpoolError("cannot store the message: " + *p);
  }

  // A fresh name: mkdir fails on a collision (another process with the same
  // pid in the same microsecond, after a restart), and we simply try again.
  constexpr int kNameAttempts = 16;
  std::string batch, work;
  for (int i = 0;; ++i) {
    batch = next_batch_name();
    work = tmp_ + "/" + batch;
    if (::mkdir(work.c_str(), 0700) == 0) break;
    if (errno != EEXIST || i + 1 == kNameAttempts) fail("cannot create `" + work + "`", errno);
  }
  const std::string committed = queue_ + "/" + batch;
  bool renamed = false;
  try {
    uint64_t sum = XXH3_64bits(data.data(), data.size());
    write_file_synced(work + "/" + std::string(kDataName), data, true);
    step("store:data-synced");
    for (size_t i = 0; i < entries.size(); ++i) {
      entries[i].id = batch + "." + std::to_string(i);
      entries[i].size = data.size();
      entries[i].last_error = cut_text(entries[i].last_error);
      for (auto& f : entries[i].failed_recipients) f.second = cut_text(f.second);
      write_file_synced(work + "/" + std::to_string(i) + std::string(kEnvSuffix),
                        serialize_envelope(entries[i], data.size(), sum), true);
      step("store:envelope-synced");
    }
    fsync_dir(work);
    step("store:batch-synced");
    // The commit point.
    if (::renameat2(AT_FDCWD, work.c_str(), AT_FDCWD, committed.c_str(), RENAME_NOREPLACE) != 0) {
      int e = errno;
      if (e != EINVAL && e != ENOSYS) fail("cannot commit `" + committed + "`", e);
      // The file system cannot do RENAME_NOREPLACE: a plain rename refuses
      // a non-empty target anyway, and the name was unique in tmp/.
      if (::rename(work.c_str(), committed.c_str()) != 0) fail("cannot commit `" + committed + "`", errno);
    }
    renamed = true;
    step("store:renamed");
    fsync_dir(queue_);
    step("store:committed");
  } catch (const SpoolError&) {
    // Take back what might still be read after a restart: the caller tells
    // the client 451, and the client sends the message again.
    std::error_code ec;
    if (renamed && ::rename(committed.c_str(), work.c_str()) != 0) fs::remove_all(committed, ec);
    fs::remove_all(work, ec);
    throw;
  }
  return entries;
}

void Spool::remove_batch_if_finished(const std::string& batch_path) const {
  DirListing l = list_dir(batch_path);
  if (!l.ok) return;  // gone already (another entry's remove finished it)
  for (const auto& n : l.names)
    if (n.ends_with(kEnvSuffix)) return;
  for (const auto& n : l.names) unlink_if_present(batch_path + "/" + n);
  if (::rmdir(batch_path.c_str()) != 0 && errno != ENOENT && errno != ENOTEMPTY)
    fail("cannot remove `" + batch_path + "`", errno);
  fsync_dir(queue_);
}

void Spool::remove(const std::string& id) {
  std::string n;
  std::string dir = batch_dir(id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  if (::unlink(env.c_str()) != 0) {
    if (errno == ENOENT) return;
    fail("cannot remove `" + env + "`", errno);
  }
  // The batch may be gone already: another entry's remove() saw this
  // envelope gone, removed the batch and synced queue/, which covers ours.
  fsync_dir_if_present(dir);
  step("remove:envelope-removed");
  remove_batch_if_finished(dir);
  step("remove:done");
}

void Spool::update(const QueueEntry& entry) {
  std::string n;
  std::string dir = batch_dir(entry.id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  int err = 0;
  auto text = read_file(env, kMaxSpoolEnvelopeBytes, err);
  if (!text) {
    if (err == ENOENT) throw SpoolError("spool entry `" + entry.id + "` is not queued");
    fail("cannot read `" + env + "`", err);
  }
  ParsedEnvelope parsed;
  std::string problem;
  if (!parse_envelope(*text, parsed, problem)) throw SpoolError("`" + env + "`: " + problem);
  QueueEntry merged = std::move(parsed.entry);
  merged.recipients = entry.recipients;
  merged.attempts = entry.attempts;
  merged.next_attempt = entry.next_attempt;
  merged.last_error = entry.last_error;
  merged.failed_recipients = entry.failed_recipients;
  merged.orcpts = entry.orcpts;
  merged.held = entry.held;
  std::string out = serialize_envelope(merged, parsed.data_bytes, parsed.data_checksum);
  std::string tmp = dir + "/" + n + std::string(kTmpSuffix);
  write_file_synced(tmp, out, false);
  step("update:temp-synced");
  as_spool_error([&] { base::replace_file(tmp, env); });
  step("update:renamed");
  fsync_dir(dir);
  step("update:committed");
}

void Spool::move_to_failed(const std::string& id, std::string_view reason) {
  std::string n;
  std::string dir = batch_dir(id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  if (::access(env.c_str(), F_OK) != 0) throw SpoolError("spool entry `" + id + "` is not queued");

  // The data first: a hard link shares it with the batch without a copy.
  // A leftover from an earlier, interrupted move is replaced.
  std::string data = dir + "/" + std::string(kDataName);
  std::string kept = failed_ + "/" + id + ".dat";
  std::string note;
  unlink_if_present(kept);
  if (::link(data.c_str(), kept.c_str()) != 0) {
    int e = errno;
    if (e == ENOENT) {
      note = " (the data file is missing)";
    } else {
      // No hard links here (some file systems): copy instead.
      int rerr = 0;
      auto content = read_file(data, SIZE_MAX, rerr);
      if (!content) fail("cannot keep the data of `" + id + "`", e);
      write_file_synced(kept, *content, true);
    }
  }
  step("failed:data-linked");
  std::string reason_path = failed_ + "/" + id + ".reason";
  write_file_synced(reason_path + ".tmp", one_line(reason) + note + "\n", false);
  as_spool_error([&] { base::replace_file(reason_path + ".tmp", reason_path); });
  fsync_dir(failed_);
  step("failed:reason-written");
  // The entry leaves the queue with this rename.
  if (::rename(env.c_str(), (failed_ + "/" + id + ".env").c_str()) != 0)
    fail("cannot move `" + env + "` to the failed area", errno);
  step("failed:envelope-moved");
  fsync_dir(failed_);
  fsync_dir_if_present(dir);  // as in remove()
  step("failed:committed");
  remove_batch_if_finished(dir);
}

std::string Spool::read_data(const std::string& id) const {
  std::string n;
  std::string dir = batch_dir(id, &n);
  std::string env = dir + "/" + n + std::string(kEnvSuffix);
  int err = 0;
  auto text = read_file(env, kMaxSpoolEnvelopeBytes, err);
  if (!text) {
    if (err == ENOENT) throw SpoolError("spool entry `" + id + "` is not queued");
    fail("cannot read `" + env + "`", err);
  }
  ParsedEnvelope parsed;
  std::string problem;
  if (!parse_envelope(*text, parsed, problem)) throw SpoolError("`" + env + "`: " + problem);
  std::string path = dir + "/" + std::string(kDataName);
  // One byte more than expected is enough to see a file that grew.
  size_t limit = parsed.data_bytes >= SIZE_MAX ? SIZE_MAX : static_cast<size_t>(parsed.data_bytes) + 1;
  auto data = read_file(path, limit, err);
  if (!data) fail("cannot read `" + path + "`", err);
  if (data->size() != parsed.data_bytes || XXH3_64bits(data->data(), data->size()) != parsed.data_checksum)
    throw SpoolError("`" + path + "` does not match its envelope (size or checksum)");
  return std::move(*data);
}

// ---------------------------------------------------------------- the lock

std::optional<SpoolLock> SpoolLock::try_acquire(const std::string& directory) {
  struct stat st{};
  if (::stat(directory.c_str(), &st) != 0 && errno != ENOENT && errno != ENOTDIR)
    fail("cannot use the spool directory `" + directory + "`", errno);
  if (!S_ISDIR(st.st_mode)) throw SpoolError("there is no spool directory `" + directory + "`");
  const std::string path = path_in(directory);
  // Read-only: flock needs no write access, so the relay's user and root
  // can both take a lock file the other created.
  int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) fail("cannot open the spool lock `" + path + "`", errno);
  while (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e == EINTR) continue;
    ::close(fd);
    if (e == EWOULDBLOCK) return std::nullopt;
    fail("cannot lock `" + path + "`", e);
  }
  return SpoolLock(fd);
}

std::optional<SpoolLock> SpoolLock::acquire(const std::string& directory, std::chrono::milliseconds wait) {
  const auto deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    if (auto lock = try_acquire(directory)) return lock;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

SpoolLock::~SpoolLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace tlsp
