// privileges.h — who the relay runs as (the `user` setting) and the one
// switch to that user after the sockets are bound. Not a public header.
//
// Contract:
//  * lookup_service_user(name) reads the account from the system's user
//    database (getpwnam_r): its uid, primary gid and name, or a problem text
//    ("`x` is not a user on this system", or uid 0: deliveries never run as
//    root). relay_config_problems() reports that problem; the switch below
//    looks the account up again, so what it acts on is what it checked.
//  * drop_privileges(user) is called once, at start, after the listening
//    sockets are bound and the TLS key is read (both may need root) and
//    before anything the service user must own is opened (the log file, the
//    table, the spool, the MTA-STS cache):
//      - started as root (euid 0) with `user`: initgroups, setgid, setuid,
//        then checks that every uid and gid is the user's and that
//        setuid(0) now fails; any failure throws.
//      - started as root without `user`: throws (deliveries never run as
//        root).
//      - started as another user: `user` empty or naming that same user
//        changes nothing; naming any other user throws (only root can
//        switch).
//    Throws std::runtime_error with a message for `tlsp relay: error: `.
//  * act_as_owner_of(dir) is what a queue tool run as root does before it
//    touches a spool (or cache) itself: it becomes the directory's owner
//    and group for good (setgroups, setgid, setuid), so every file it makes
//    or replaces is the relay's to read and replace, as Postfix's
//    postsuper keeps the queue's ownership. Nothing changes when not run
//    as root or when root owns the directory. Throws std::runtime_error.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

namespace tlsp::relay {

struct ServiceUser {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct ServiceUserLookup {
  std::optional<ServiceUser> user;
  std::string problem;  // set when !user
};

ServiceUserLookup lookup_service_user(const std::string& name);

void drop_privileges(const std::string& user);

void act_as_owner_of(const std::string& dir);

}  // namespace tlsp::relay
