// relay_config.h — what the relay reads out of its configuration beyond
// the checks of tlsp/relay.h (relay_config_problems, validate_relay_config):
// a listen address, the name the relay gives itself, and the log's outputs.
// Not a public header.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <memory>
#include <vector>

#include "tlsp/relay.h"
#include "tlsp/relay_log.h"

namespace tlsp::relay {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};

// "addr:port" or "[v6]:port"; nullopt for anything else.
std::optional<HostPort> parse_host_port(std::string_view s);

// The log a validated configuration asks for: every `log` output, then
// `log_file` as file:PATH; standard error when there is none. Throws
// std::runtime_error when an output cannot be opened.
std::unique_ptr<RelayLog> open_relay_log(const RelayConfig& config);

}  // namespace tlsp::relay
