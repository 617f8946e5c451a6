// spool_recovery.cpp — the spool at start-up and as the operator counts
// it: recover() finishes or undoes what a crash interrupted and returns
// every committed entry; an entry that cannot be read goes to failed/
// (tlsp/spool.h; docs/spool.md, "Start-up"). queued_count() scans the queue.
#include "tlsp/spool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <algorithm>
#include <filesystem>

#include "spool_files.h"
#include "spool_format.h"
#include "tlsp/base/quote.h"

namespace tlsp {

using namespace spool;
using base::ticked;
namespace fs = std::filesystem;

namespace {

void sort_by_arrival(std::vector<QueueEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const QueueEntry& a, const QueueEntry& b) {
    return a.arrival != b.arrival ? a.arrival < b.arrival : a.id < b.id;
  });
}

// The committed envelope `<n>.env` of `batch_path`, checked as recovery
// checks it (the checksum and format, the id inside, the data's presence
// and size); nullopt with the reason otherwise.
std::optional<QueueEntry> read_committed(const std::string& batch_path, const std::string& id, const std::string& n,
                                         std::string& problem) {
  std::string env = batch_path + "/" + n + std::string(kEnvSuffix);
  ParsedEnvelope parsed;
  int err = 0;
  std::optional<std::string> text;
  try {
    text = read_file(env, kMaxSpoolEnvelopeBytes, err);
    if (!text) {
      problem = "cannot read the envelope: " + errno_text(err);
      return std::nullopt;
    }
  } catch (const SpoolError& e) {
    problem = e.what();
    return std::nullopt;
  }
  struct stat st{};
  bool have_data = ::stat((batch_path + "/" + std::string(kDataName)).c_str(), &st) == 0 && S_ISREG(st.st_mode);
  if (!parse_envelope(*text, parsed, problem)) return std::nullopt;
  if (parsed.entry.id != id) {
    problem = "envelope names another entry " + ticked(parsed.entry.id);
  } else if (!have_data) {
    problem = "the data file is missing";
  } else if (static_cast<uint64_t>(st.st_size) != parsed.data_bytes) {
    problem = "the data file has " + std::to_string(st.st_size) + " bytes, the envelope says " +
              std::to_string(parsed.data_bytes);
  } else {
    return std::move(parsed.entry);
  }
  return std::nullopt;
}

}  // namespace

std::vector<QueueEntry> Spool::recover(std::vector<std::string>* problems) {
  auto report = [problems](std::string line) {
    if (problems) problems->push_back(std::move(line));
  };
  // Unfinished store()s: never acknowledged, so never promised.
  DirListing t = list_dir(tmp_);
  if (!t.ok) fail("cannot list `" + tmp_ + "`", errno);
  for (const auto& n : t.names) {
    std::error_code ec;
    fs::remove_all(tmp_ + "/" + n, ec);
    if (ec) throw SpoolError("cannot remove `" + tmp_ + "/" + n + "`: " + ec.message());
  }

  std::vector<QueueEntry> out;
  DirListing q = list_dir(queue_);
  if (!q.ok) fail("cannot list `" + queue_ + "`", errno);
  for (const auto& batch : q.names) {
    std::string path = queue_ + "/" + batch;
    if (!valid_batch_name(batch) || !is_directory(path)) {
      report("spool: stray " + ticked(path) + " left alone (not a batch directory)");
      continue;
    }
    DirListing b = list_dir(path);
    if (!b.ok) fail("cannot list `" + path + "`", errno);
    std::vector<std::string> envs;
    bool changed = false;
    for (const auto& n : b.names) {
      if (n.ends_with(kTmpSuffix)) {
        unlink_if_present(path + "/" + n);  // an update() that did not finish: the old envelope stands
        changed = true;
      } else if (n.ends_with(kEnvSuffix) && valid_index(n.substr(0, n.size() - kEnvSuffix.size()))) {
        envs.push_back(n.substr(0, n.size() - kEnvSuffix.size()));
      } else if (n != kDataName) {
        report("spool: stray " + ticked(path + "/" + n) + " left alone");
      }
    }
    if (changed) fsync_dir(path);
    if (envs.empty()) {
      remove_batch_if_finished(path);  // every entry had left: a remove() that did not finish
      continue;
    }
    for (const auto& n : envs) {
      std::string id = batch + "." + n;
      std::string problem;
      std::optional<QueueEntry> e = read_committed(path, id, n, problem);
      if (!e) {
        move_to_failed(id, problem);
        report("spool: entry `" + id + "` moved to failed/: " + problem);
        continue;
      }
      out.push_back(std::move(*e));
    }
  }
  sort_by_arrival(out);
  return out;
}

std::vector<QueueEntry> Spool::scan(std::vector<std::string>* problems) const {
  std::vector<QueueEntry> out;
  DirListing q = list_dir(queue_);
  if (!q.ok) fail("cannot list `" + queue_ + "`", errno);
  for (const auto& batch : q.names) {
    std::string path = queue_ + "/" + batch;
    if (!valid_batch_name(batch) || !is_directory(path)) continue;
    DirListing b = list_dir(path);
    if (!b.ok) continue;  // removed meanwhile
    for (const auto& name : b.names) {
      if (!name.ends_with(kEnvSuffix) || name.ends_with(kTmpSuffix)) continue;
      std::string n = name.substr(0, name.size() - kEnvSuffix.size());
      if (!valid_index(n)) continue;
      std::string id = batch + "." + n, problem;
      if (std::optional<QueueEntry> e = read_committed(path, id, n, problem))
        out.push_back(std::move(*e));
      else if (problems)
        problems->push_back("spool: entry `" + id + "` cannot be read: " + problem);
    }
  }
  sort_by_arrival(out);
  return out;
}

std::optional<QueueEntry> Spool::read_entry(const std::string& id) const {
  std::string n;
  std::string dir = batch_dir(id, &n);
  const std::string env = dir + "/" + n + std::string(kEnvSuffix);
  if (::access(env.c_str(), F_OK) != 0) return std::nullopt;
  std::string problem;
  std::optional<QueueEntry> e = read_committed(dir, id, n, problem);
  if (e) return e;
  if (::access(env.c_str(), F_OK) != 0) return std::nullopt;  // it left the queue meanwhile
  throw SpoolError("spool entry `" + id + "`: " + problem);
}

size_t Spool::queued_count() const {
  size_t count = 0;
  DirListing q = list_dir(queue_);
  for (const auto& batch : q.names) {
    if (!valid_batch_name(batch)) continue;
    DirListing b = list_dir(queue_ + "/" + batch);
    for (const auto& n : b.names)
      if (n.ends_with(kEnvSuffix)) ++count;
  }
  return count;
}

}  // namespace tlsp
