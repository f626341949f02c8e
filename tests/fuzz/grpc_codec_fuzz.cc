// libFuzzer target: the gRPC client's parsers of bytes it does not control: a reply body split
// into messages (FrameDecoder, fed in pieces whose sizes the input chooses), grpc-status and
// grpc-message values, and the GrpcService bytes a plugin may pass instead of a cluster name.
//
// Input: byte 0 picks the message size limit (0-255 bytes, or 4 MiB when 0); byte 1 the piece
// size; the rest is the body. The same rest is also read as a header value and as a GrpcService.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "grpc/codec.h"

using sluice::grpc::FrameDecoder;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const size_t limit = data[0] == 0 ? 4 * 1024 * 1024 : data[0];
  const size_t piece = data[1] == 0 ? 1 : data[1];
  const std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);

  // Fed whole and fed in pieces, the decoder must agree on every message and on the verdict.
  FrameDecoder whole(limit), pieces(limit);
  std::vector<std::string> a, b;
  const bool ok_whole = whole.decode(body, a);
  bool ok_pieces = true;
  for (size_t at = 0; at < body.size() && ok_pieces; at += piece) {
    ok_pieces = pieces.decode(body.substr(at, piece), b);
  }
  FUZZ_CHECK(ok_whole == ok_pieces, "whole %d, in pieces of %zu %d", ok_whole, piece, ok_pieces);
  FUZZ_CHECK(a == b, "%zu messages whole, %zu in pieces", a.size(), b.size());
  size_t framed = 0;
  for (const std::string& m : a) {
    FUZZ_CHECK(m.size() <= limit, "a message of %zu bytes passed a limit of %zu", m.size(), limit);
    framed += 5 + m.size();
  }
  FUZZ_CHECK(framed <= body.size(), "more message bytes than input");
  if (ok_whole) {
    FUZZ_CHECK(whole.has_partial_frame() == (framed < body.size()), "partial frame state");
  }

  // Framing what was decoded gives back the input's whole frames.
  std::string reframed;
  for (const std::string& m : a) sluice::grpc::append_frame(reframed, m);
  if (ok_whole) FUZZ_CHECK(reframed == body.substr(0, framed), "reframing differs");

  (void)sluice::grpc::parse_status(body);
  const std::string message = sluice::grpc::decode_message(body);
  FUZZ_CHECK(message.size() <= body.size(), "decoding grew the message");
  if (auto target = sluice::grpc::parse_grpc_service(body)) {
    FUZZ_CHECK(!target->cluster.empty(), "a GrpcService without a cluster name was accepted");
  }
  return 0;
}
