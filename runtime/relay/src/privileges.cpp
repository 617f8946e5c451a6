// privileges.cpp — the `user` setting and the switch to it (privileges.h).
// Postfix's master does the same split: bind port 25 as root, then every
// process that touches mail runs as mail_owner, which may not be root.
#include "privileges.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "tlsp/base/quote.h"

namespace tlsp::relay {

ServiceUserLookup lookup_service_user(const std::string& name) {
  const std::string shown = base::ticked(name);
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  int err = 0;
  while ((err = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found)) == ERANGE && buf.size() < (1u << 20))
    buf.resize(buf.size() * 2);
  if (err != 0) return {std::nullopt, "cannot look up " + shown + ": " + std::strerror(err)};
  if (found == nullptr) return {std::nullopt, shown + " is not a user on this system"};
  if (pw.pw_uid == 0) return {std::nullopt, shown + " has uid 0: deliveries never run as root"};
  return {ServiceUser{pw.pw_name, pw.pw_uid, pw.pw_gid}, ""};
}

namespace {
[[noreturn]] void fail(const std::string& step, const std::string& user) {
  throw std::runtime_error("cannot switch to user " + base::ticked(user) + ": " + step + ": " + std::strerror(errno));
}
}  // namespace

void drop_privileges(const std::string& user) {
  const uid_t euid = ::geteuid();
  if (euid != 0) {
    if (user.empty()) return;
    ServiceUserLookup u = lookup_service_user(user);
    if (!u.user) throw std::runtime_error("user: " + u.problem);
    if (u.user->uid == euid && u.user->uid == ::getuid()) return;
    throw std::runtime_error("user: started as uid " + std::to_string(euid) + ", not root: cannot switch to " +
                             base::ticked(user) + " (start the relay as root, or as that user)");
  }
  if (user.empty())
    throw std::runtime_error(
        "started as root without `user`: deliveries never run as root; set `user` to the service account "
        "(e.g. `user = tlsp`)");
  ServiceUserLookup u = lookup_service_user(user);
  if (!u.user) throw std::runtime_error("user: " + u.problem);
  const ServiceUser& s = *u.user;
  // Groups first: setgid and initgroups need root, which setuid gives up.
  if (::initgroups(s.name.c_str(), s.gid) != 0) fail("initgroups", user);
  if (::setgid(s.gid) != 0) fail("setgid", user);
  if (::setuid(s.uid) != 0) fail("setuid", user);
  uid_t ruid, euid2, suid;
  gid_t rgid, egid, sgid;
  if (::getresuid(&ruid, &euid2, &suid) != 0 || ::getresgid(&rgid, &egid, &sgid) != 0) fail("getresuid", user);
  if (ruid != s.uid || euid2 != s.uid || suid != s.uid || rgid != s.gid || egid != s.gid || sgid != s.gid)
    throw std::runtime_error("cannot switch to user " + base::ticked(user) + ": ids still differ after setuid");
  // Root must be gone for good: a saved uid of 0 would let it come back.
  if (::setuid(0) == 0) throw std::runtime_error("cannot switch to user " + base::ticked(user) + ": setuid(0) still works");
}

void act_as_owner_of(const std::string& dir) {
  if (::geteuid() != 0) return;
  struct stat st {};
  // A directory that cannot be read is the spool's own error to report.
  if (::stat(dir.c_str(), &st) != 0 || st.st_uid == 0) return;
  const std::string who = std::to_string(st.st_uid) + " (the owner of " + base::ticked(dir) + ")";
  if (::setgroups(1, &st.st_gid) != 0) fail("setgroups", who);
  if (::setgid(st.st_gid) != 0) fail("setgid", who);
  if (::setuid(st.st_uid) != 0) fail("setuid", who);
  if (::setuid(0) == 0) throw std::runtime_error("cannot act as " + who + ": setuid(0) still works");
}

}  // namespace tlsp::relay
