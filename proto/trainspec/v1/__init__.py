"""Generated protobuf and gRPC code for trainspec.v1 (see tools/gen_proto.sh)."""
