// service_notify.cpp — sd_notify(3) for the relay's start, reloads and
// shutdown (service_notify.h).
#include "service_notify.h"

#include <systemd/sd-daemon.h>

#include <ctime>
#include <string>

namespace tlsp::relay {

void notify_ready() { ::sd_notify(0, "READY=1\nSTATUS=accepting mail"); }

void notify_reloading() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  const unsigned long long usec =
      static_cast<unsigned long long>(now.tv_sec) * 1000000ull + static_cast<unsigned long long>(now.tv_nsec) / 1000;
  const std::string state = "RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=reloading the table";
  ::sd_notify(0, state.c_str());
}

void notify_stopping() { ::sd_notify(0, "STOPPING=1\nSTATUS=shutting down"); }

}  // namespace tlsp::relay
