// load.cpp — the file loader: a work queue of files to read and parse,
// served by worker threads, growing as include directives are found.
// Workers share only the queue and the canonical-path map (under one
// mutex); each file's results are written by the one worker that loads it.
//
// Limits (source_files.h): a file is read only if it is regular and small
// enough; the files of one compile are bounded in number and in total
// size. The last two are checked as workers race, so which file crosses
// the line depends on timing: when one is hit, the whole result is that
// one diagnostic, and nothing that depends on timing is reported.
#include "load.h"


#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "internal_error.h"
#include "parse.h"
#include "source_files.h"

#include "tlsp/base/digest.h"

namespace fs = std::filesystem;

namespace tlsp {
namespace {

struct IncludeEdge {
  uint32_t target;
  SourceLocation where;  // the include directive
};

struct FileSlot {
  std::string canonical;
  std::unique_ptr<LoadedSource> source = std::make_unique<LoadedSource>();
  ast::File ast;
  std::array<uint8_t, 32> sha256{};
  DiagnosticSink sink;
  std::vector<IncludeEdge> includes;
  bool read_failed = false;
  bool syntax_error = false;
};

// A UTF-8 byte order mark, which some editors write at the start of a file.
constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

bool has_glob_magic(std::string_view s) { return s.find_first_of("*?[") != std::string_view::npos; }

std::string error_text(const std::error_code& ec) { return ec.message(); }

class Loader {
 public:
  Loader(unsigned threads, const std::string* stdin_text) : threads_(threads), stdin_text_(stdin_text) {}

  ParsedPolicy run(const std::vector<std::string>& roots) {
    DiagnosticSink global;
    bool input_error = false;
    if (!roots.empty()) base_dir_ = fs::absolute(fs::path(roots.front())).parent_path().lexically_normal();
    for (const auto& r : roots) {
      if (r == "-" && stdin_text_) {
        // Keyed by a name no canonical (absolute) path can have; its
        // display path has no directory, so its includes resolve from the cwd.
        const size_t known = slots_.size();
        std::optional<uint32_t> id = intern(kStdinKey, kStdinKey);
        if (id && slots_.size() > known) root_ids_.push_back(*id);
        continue;
      }
      std::error_code ec;
      fs::path canonical = fs::canonical(r, ec);
      if (ec) {
        global.error("E0303", {}, "cannot read " + ticked(r) + ": " + error_text(ec));
        input_error = true;
        continue;
      }
      if (fs::is_directory(canonical)) {
        global.error("E0303", {}, "cannot read " + ticked(r) + ": it is a directory");
        input_error = true;
        continue;
      }
      const size_t known = slots_.size();  // no worker runs yet
      std::optional<uint32_t> id = intern(canonical.string(), fs::path(r).lexically_normal().string());
      if (id && slots_.size() > known) root_ids_.push_back(*id);
    }

    std::vector<std::thread> pool;
    for (unsigned i = 0; i < threads_; ++i) pool.emplace_back([this] { work(); });
    for (auto& t : pool) t.join();

    return finish(std::move(global), input_error);
  }

 private:
  // Returns the file's provisional id, creating and queueing it if new;
  // nullopt once kMaxPolicyFiles files are known.
  std::optional<uint32_t> intern(const std::string& canonical, const std::string& display) {
    std::lock_guard lock(mu_);
    auto it = by_path_.find(canonical);
    if (it != by_path_.end()) return it->second;
    if (slots_.size() == kMaxPolicyFiles) {
      too_many_files_ = true;
      return std::nullopt;
    }
    uint32_t id = static_cast<uint32_t>(slots_.size());
    auto slot = std::make_unique<FileSlot>();
    slot->canonical = canonical;
    slot->source->display_path = display;
    fs::path abs = fs::absolute(fs::path(display)).lexically_normal();
    fs::path rel = abs.lexically_relative(base_dir_);
    slot->source->table_path = rel.empty() || canonical == kStdinKey ? display : rel.string();
    slots_.push_back(std::move(slot));
    by_path_.emplace(canonical, id);
    queue_.push_back(id);
    ++pending_;
    cv_.notify_one();
    return id;
  }

  void work() {
    while (true) {
      uint32_t id;
      FileSlot* slot;
      {
        std::unique_lock lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty() || pending_ == 0; });
        if (queue_.empty()) return;
        id = queue_.front();
        queue_.pop_front();
        slot = slots_[id].get();
      }
      load(id, *slot);
      {
        std::lock_guard lock(mu_);
        if (--pending_ == 0) cv_.notify_all();
      }
    }
  }

  void load(uint32_t id, FileSlot& slot) {
    slot.ast.file = id;
    {
      std::lock_guard lock(mu_);
      if (too_many_bytes_ || too_many_files_) return;  // the result is that error alone
    }
    LoadedSource& src = *slot.source;
    ReadFailure failure;
    if (slot.canonical == kStdinKey) {
      // Read by the caller; held to the per-file limit like any file.
      if (stdin_text_->size() > kMaxPolicyFileBytes) {
        slot.read_failed = true;
        slot.sink.error("E0306", {},
                        "cannot read `<stdin>`: it is larger than the limit of " + describe_bytes(kMaxPolicyFileBytes) +
                            " per file");
        return;
      }
      src.text = *stdin_text_;
    } else if (!read_policy_file(slot.canonical, src.text, failure)) {
      slot.read_failed = true;
      slot.sink.error(failure.code, {}, "cannot read " + ticked(slot.source->display_path) + ": " + failure.reason);
      return;
    }
    {
      std::lock_guard lock(mu_);
      total_bytes_ += src.text.size();
      if (total_bytes_ > kMaxPolicyBytes) {
        too_many_bytes_ = true;
        src.text.clear();
        return;
      }
    }
    // The digest is of the file as it is on disk, so it matches sha256sum.
    slot.sha256 = base::sha256(src.text);
    // A leading byte order mark is accepted and dropped, as C and C++
    // compilers do; columns on line 1 then count from after it.
    if (src.text.starts_with(kUtf8Bom)) src.text.erase(0, kUtf8Bom.size());
    src.line_starts.push_back(0);
    for (size_t i = 0; i < src.text.size(); ++i)
      if (src.text[i] == '\n') src.line_starts.push_back(static_cast<uint32_t>(i + 1));

    if (!parse_policy(src, id, slot.ast, slot.sink)) slot.syntax_error = true;
    for (const auto& inc : slot.ast.includes) resolve_include(slot, inc);
  }

  void resolve_include(FileSlot& slot, const ast::Include& inc) {
    std::string pattern(inc.pattern.text);
    if (pattern.empty()) {
      slot.sink.error("E0301", inc.pattern.where, "empty include path");
      return;
    }
    if (pattern.size() > kMaxIncludePatternBytes) {
      slot.sink.error("E0307", inc.pattern.where,
                      "include pattern is longer than the limit of " + describe_bytes(kMaxIncludePatternBytes));
      return;
    }
    fs::path dir = fs::path(slot.source->display_path).parent_path();
    fs::path full = fs::path(pattern).is_absolute() ? fs::path(pattern) : dir / pattern;
    const bool magic = has_glob_magic(pattern);
    IncludeExpansion expansion = expand_include_pattern(full.string());
    if (expansion.too_broad) {
      slot.sink
          .error("E0307", inc.pattern.where,
                 "include " + ticked(pattern) + " is too broad: expanding it read more than " +
                     std::to_string(kMaxIncludeScanEntries) + " directory entries")
          .help = "name the directories, and use wildcards only for the files in them, e.g. `tenants/*.tlsp`";
      return;
    }
    std::vector<std::string>& matches = expansion.matches;
    std::sort(matches.begin(), matches.end());

    size_t taken = 0;
    for (const auto& m : matches) {
      std::error_code ec;
      fs::path canonical = fs::canonical(m, ec);
      if (ec) continue;
      if (fs::is_directory(canonical)) {
        if (!magic) {
          slot.sink.error("E0304", inc.pattern.where, "include " + ticked(pattern) + " names a directory").help =
              "include the files in it with a pattern, e.g. `" + pattern + "/*.tlsp`";
          return;
        }
        continue;
      }
      if (magic && canonical.string() == slot.canonical) continue;  // a glob never includes its own file
      ++taken;
      std::optional<uint32_t> target = intern(canonical.string(), fs::path(m).lexically_normal().string());
      if (!target) return;  // kMaxPolicyFiles: reported once, in finish()
      slot.includes.push_back({*target, inc.where});
    }
    if (taken == 0) {
      Diagnostic& d = slot.sink.error("E0301", inc.pattern.where, "include " + ticked(pattern) + " matches no file");
      d.help = "paths are relative to the including file's directory (" +
               ticked(dir.empty() ? std::string(".") : dir.string()) + ")";
    }
  }

  // Final file order, include cycles, and remapping provisional ids.
  ParsedPolicy finish(DiagnosticSink global, bool input_error) {
    if (too_many_files_ || too_many_bytes_) {
      ParsedPolicy out;
      out.input_error = too_many_bytes_;  // like one file too large; too many files is the policy's mistake
      DiagnosticSink only;
      if (too_many_files_)
        only.error("E0308", {}, "the policy includes more than " + std::to_string(kMaxPolicyFiles) + " files").help =
            "check the include patterns; this limit is there to stop a pattern that matches far too much";
      else
        only.error("E0306", {},
                   "the policy's files together are larger than the limit of " + describe_bytes(kMaxPolicyBytes));
      out.sinks.push_back(std::move(only));
      return out;
    }
    const size_t n = slots_.size();
    std::vector<uint32_t> order;  // final index -> provisional id
    std::vector<uint32_t> final_of(n, kBuiltinFile);
    std::vector<uint8_t> state(n, 0);  // 0 unseen, 1 on the DFS stack, 2 done
    std::vector<uint32_t> stack;

    // Iterative DFS so a deep include chain cannot overflow the C++ stack.
    struct Frame {
      uint32_t id;
      size_t next;
    };
    for (uint32_t root : root_ids_) {
      if (state[root] != 0) continue;
      std::vector<Frame> frames{{root, 0}};
      state[root] = 1;
      final_of[root] = static_cast<uint32_t>(order.size());
      order.push_back(root);
      while (!frames.empty()) {
        Frame& f = frames.back();
        FileSlot& s = *slots_[f.id];
        if (f.next == s.includes.size()) {
          state[f.id] = 2;
          frames.pop_back();
          continue;
        }
        const IncludeEdge& e = s.includes[f.next++];
        if (state[e.target] == 1) {
          std::string chain;
          bool on = false;
          for (const Frame& fr : frames) {
            if (fr.id == e.target) on = true;
            if (on) chain += ticked(slots_[fr.id]->source->display_path) + " includes ";
          }
          chain += ticked(slots_[e.target]->source->display_path);
          s.sink.error("E0302", e.where, "include cycle: " + chain);
          continue;
        }
        if (state[e.target] == 2) continue;
        // A file that could not be read is named without a location: say
        // where it is included (the first place in file order).
        if (FileSlot& t = *slots_[e.target]; t.read_failed && !t.sink.items().empty())
          t.sink.items().front().notes.push_back({e.where, "included here"});
        state[e.target] = 1;
        final_of[e.target] = static_cast<uint32_t>(order.size());
        order.push_back(e.target);
        frames.push_back({e.target, 0});
      }
    }

    ParsedPolicy out;
    out.input_error = input_error;
    out.sources.reserve(order.size());
    for (uint32_t id : order) {
      FileSlot& s = *slots_[id];
      out.input_error = out.input_error || s.read_failed;
      out.syntax_error = out.syntax_error || s.syntax_error;
      remap(s.ast, final_of);
      for (auto& d : s.sink.items()) remap(d, final_of);
      out.sources.push_back(std::move(s.source));
      out.files.push_back(std::move(s.ast));
      out.parsed.push_back(!s.syntax_error && !s.read_failed);
      out.sha256.push_back(s.sha256);
      out.sinks.push_back(std::move(s.sink));
    }
    out.sinks.push_back(std::move(global));
    return out;
  }

  // Every file that has locations was reached from a root, so it has a
  // final index.
  static uint32_t final_index(uint32_t provisional, const std::vector<uint32_t>& m) {
    TLSP_ASSERT(provisional < m.size() && m[provisional] != kBuiltinFile,
                "a location names a file that has no place in the file order");
    return m[provisional];
  }
  static void remap(SourceLocation& w, const std::vector<uint32_t>& m) {
    if (w.file != kBuiltinFile) w.file = final_index(w.file, m);
  }
  static void remap(Diagnostic& d, const std::vector<uint32_t>& m) {
    remap(d.where, m);
    for (auto& note : d.notes) remap(note.where, m);
  }
  static void remap(ast::Text& t, const std::vector<uint32_t>& m) { remap(t.where, m); }
  static void remap(ast::File& f, const std::vector<uint32_t>& m) {
    f.file = final_index(f.file, m);
    for (auto& h : f.headers) {
      remap(h.name, m);
      remap(h.label, m);
      remap(h.where, m);
    }
    for (auto& i : f.includes) {
      remap(i.pattern, m);
      remap(i.where, m);
    }
    for (auto& d : f.domains) remap(d.where, m);
    for (auto& d : f.directions) remap(d.where, m);
    for (auto& p : f.peers) remap(p.where, m);
    for (auto& t : f.strings) remap(t, m);
    for (auto& s : f.settings) {
      remap(s.key, m);
      remap(s.value, m);
    }
  }

  unsigned threads_;
  fs::path base_dir_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<uint32_t> queue_;
  size_t pending_ = 0;
  std::map<std::string, uint32_t> by_path_;
  std::vector<std::unique_ptr<FileSlot>> slots_;
  std::vector<uint32_t> root_ids_;
  static constexpr const char* kStdinKey = "<stdin>";
  const std::string* stdin_text_;  // the text of the root `-`, or null

  // Under mu_: the limits on a whole compile (source_files.h).
  size_t total_bytes_ = 0;
  bool too_many_bytes_ = false;
  bool too_many_files_ = false;
};

}  // namespace

ParsedPolicy load_policy(const std::vector<std::string>& roots, unsigned threads, const std::string* stdin_text) {
  return Loader(std::max(1u, threads), stdin_text).run(roots);
}

}  // namespace tlsp
