// Wasm module code from vm_config.code.remote: fetched over HTTP through a configured cluster
// (with retries and backoff) and checked against its sha256, or pulled from an OCI registry
// (oci:// URIs, see oci/), and kept in wasm::CodeCache by hash, so a reload never downloads the
// same code twice. The server fetches every remote module a
// configuration needs before it builds that configuration; loading a plugin then takes the bytes
// from the cache.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <asio.hpp>

#include "config/bootstrap.h"
#include "http/async_client.h"

namespace sluice::server {

// Every remote module `bootstrap` names (filters, network filters, services).
std::vector<const config::RemoteCode*> remote_code_of(const config::Bootstrap& bootstrap);

// Fetches the modules of `bootstrap` that are not cached, each with its retries, through
// `client` on `loop`; then calls `done` on the loop with one error per module that could not be
// had (none when all are cached now). `done` runs before this returns when nothing needs
// fetching. Keep the returned handle until `done` ran: dropping it cancels what is still in
// flight (without calling `done`).
class RemoteCodeFetch;
std::shared_ptr<RemoteCodeFetch> fetch_remote_code(
    asio::io_context& loop, http::AsyncClient& client, const config::Bootstrap& bootstrap,
    std::function<void(std::vector<std::string> errors)> done);

}  // namespace sluice::server
