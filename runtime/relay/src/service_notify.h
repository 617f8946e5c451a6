// service_notify.h — telling systemd where the relay is in its life
// (sd_notify(3), Type=notify in packaging/tlsp-relay.service). Not a public
// header.
//
// Contract: each call sends one state to the socket named by NOTIFY_SOCKET
// (left set, so later calls reach it too); without NOTIFY_SOCKET, or when
// the send fails, it does nothing: the service manager is optional and a
// relay started by hand behaves the same.
//   READY=1      the listening sockets are bound and the acceptors run
//   RELOADING=1  a SIGHUP reload starts (with MONOTONIC_USEC, which
//                systemd 253's Type=notify-reload requires); READY=1 ends it
//   STOPPING=1   the clean shutdown has begun
#pragma once

namespace tlsp::relay {

void notify_ready();
void notify_reloading();
void notify_stopping();

}  // namespace tlsp::relay
