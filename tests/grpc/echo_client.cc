// A gRPC client for the proxying tests: grpc_echo_client HOST:PORT CALL [ARGS]. Prints what it
// got, one line per fact, and exits 0 when the call behaved as gRPC says it should.
//   unary MESSAGE [PADDING_BYTES]    Echo; prints "reply <message> <padding bytes>" and trailers
//   fail CODE MESSAGE                Echo asking for status CODE; prints "status <code> <message>"
//   stream MESSAGE COUNT             StreamEcho; prints "replies <n>" (all in order)
//   collect COUNT PADDING_BYTES      CollectEcho; prints "collected <n> <bytes>"
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <string>

#include "echo.grpc.pb.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: grpc_echo_client HOST:PORT unary|fail|stream|collect ARGS...\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(argv[1], grpc::InsecureChannelCredentials());
  auto echo = sluice::test::Echo::NewStub(channel);
  const std::string call = argv[2];
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  context.AddMetadata("x-test", "through-the-proxy");
  if (call == "unary" || call == "fail") {
    sluice::test::EchoRequest request;
    if (call == "unary") {
      request.set_message(argc > 3 ? argv[3] : "hello");
      if (argc > 4) request.set_padding(std::string(std::stoul(argv[4]), 'p'));
    } else {
      request.set_fail_code(std::stoi(argv[3]));
      request.set_message(argc > 4 ? argv[4] : "");
    }
    sluice::test::EchoReply reply;
    grpc::Status status = echo->Echo(&context, request, &reply);
    for (const auto& [k, v] : context.GetServerTrailingMetadata()) {
      std::cout << "trailer " << std::string(k.data(), k.size()) << " "
                << std::string(v.data(), v.size()) << "\n";
    }
    if (call == "fail") {
      std::cout << "status " << status.error_code() << " " << status.error_message() << "\n";
      return status.error_code() == request.fail_code() ? 0 : 1;
    }
    if (!status.ok()) {
      std::cout << "error " << status.error_code() << " " << status.error_message() << "\n";
      return 1;
    }
    std::cout << "reply " << reply.message() << " " << reply.padding_bytes() << "\n";
    return 0;
  }
  if (call == "stream") {
    sluice::test::EchoRequest request;
    request.set_message(argv[3]);
    request.set_count(std::stoi(argv[4]));
    auto reader = echo->StreamEcho(&context, request);
    sluice::test::EchoReply reply;
    int n = 0;
    while (reader->Read(&reply)) {
      if (reply.index() != n || reply.message() != argv[3]) {
        std::cout << "out of order at " << n << "\n";
        return 1;
      }
      ++n;
    }
    grpc::Status status = reader->Finish();
    std::cout << "replies " << n << " status " << status.error_code() << "\n";
    return status.ok() ? 0 : 1;
  }
  if (call == "collect") {
    sluice::test::EchoReply reply;
    auto writer = echo->CollectEcho(&context, &reply);
    const int count = std::stoi(argv[3]);
    sluice::test::EchoRequest request;
    request.set_padding(std::string(std::stoul(argv[4]), 'c'));
    for (int i = 0; i < count; ++i) {
      if (!writer->Write(request)) break;
    }
    writer->WritesDone();
    grpc::Status status = writer->Finish();
    std::cout << "collected " << reply.index() << " " << reply.padding_bytes() << " status "
              << status.error_code() << "\n";
    return status.ok() ? 0 : 1;
  }
  std::cerr << "unknown call " << call << "\n";
  return 2;
}
