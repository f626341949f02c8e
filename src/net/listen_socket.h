// A listening socket for the servers that run on one loop (the admin listener, the hub): open,
// SO_REUSEADDR, bind, listen. Workers' listeners (SO_REUSEPORT, one per worker) are in
// server/worker.cc.
#pragma once

#include <cstdint>
#include <string>

#include <asio.hpp>

namespace sluice::net {

// "" when `acceptor` listens on `endpoint`, else why not (the OS's message).
std::string open_listen_socket(asio::ip::tcp::acceptor& acceptor,
                               const asio::ip::tcp::endpoint& endpoint);
// The port it is bound to (the one the OS chose for port 0), or 0.
uint16_t bound_port(const asio::ip::tcp::acceptor& acceptor);

}  // namespace sluice::net
