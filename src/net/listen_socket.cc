#include "net/listen_socket.h"

namespace sluice::net {

std::string open_listen_socket(asio::ip::tcp::acceptor& acceptor,
                               const asio::ip::tcp::endpoint& endpoint) {
  asio::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  return ec ? ec.message() : "";
}

uint16_t bound_port(const asio::ip::tcp::acceptor& acceptor) {
  asio::error_code ec;
  return acceptor.local_endpoint(ec).port();
}

}  // namespace sluice::net
