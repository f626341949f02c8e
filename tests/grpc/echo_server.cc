// A gRPC server for the proxying tests (tests/e2e/grpc_test.sh): grpc_echo_server PORT.
// Echo answers the message (or the status asked for, with trailing metadata), StreamEcho streams
// `count` replies, CollectEcho counts the messages and padding it receives.
#include <grpcpp/grpcpp.h>

#include <iostream>
#include <string>

#include "echo.grpc.pb.h"

namespace {

class EchoService final : public sluice::test::Echo::Service {
  grpc::Status Echo(grpc::ServerContext* context, const sluice::test::EchoRequest* request,
                    sluice::test::EchoReply* reply) override {
    // Request metadata comes back as trailing metadata: the test sees what reached the server.
    const auto& md = context->client_metadata();
    if (auto it = md.find("x-test"); it != md.end()) {
      context->AddTrailingMetadata("x-test-seen",
                                   std::string(it->second.data(), it->second.size()));
    }
    if (request->fail_code() != 0) {
      return grpc::Status(static_cast<grpc::StatusCode>(request->fail_code()),
                          "failed as asked: " + request->message());
    }
    reply->set_message(request->message());
    reply->set_padding_bytes(static_cast<int64_t>(request->padding().size()));
    return grpc::Status::OK;
  }

  grpc::Status StreamEcho(grpc::ServerContext*, const sluice::test::EchoRequest* request,
                          grpc::ServerWriter<sluice::test::EchoReply>* writer) override {
    for (int i = 0; i < request->count(); ++i) {
      sluice::test::EchoReply reply;
      reply.set_message(request->message());
      reply.set_index(i);
      if (!writer->Write(reply)) break;
    }
    return grpc::Status::OK;
  }

  grpc::Status CollectEcho(grpc::ServerContext*,
                           grpc::ServerReader<sluice::test::EchoRequest>* reader,
                           sluice::test::EchoReply* reply) override {
    sluice::test::EchoRequest request;
    int n = 0;
    int64_t bytes = 0;
    while (reader->Read(&request)) {
      ++n;
      bytes += static_cast<int64_t>(request.padding().size());
    }
    reply->set_index(n);
    reply->set_padding_bytes(bytes);
    return grpc::Status::OK;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: grpc_echo_server PORT\n";
    return 2;
  }
  EchoService service;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(std::string("127.0.0.1:") + argv[1], grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) {
    std::cerr << "grpc_echo_server: cannot listen on port " << argv[1] << "\n";
    return 1;
  }
  std::cout << "listening on 127.0.0.1:" << argv[1] << std::endl;
  server->Wait();
}
