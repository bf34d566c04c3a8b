#!/usr/bin/env bash
# Regenerates the Python code (and mypy stubs) beside the .proto files.
# Versions come from constraints.txt (grpcio-tools pins the protoc that runs here).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
out=proto
rm -f proto/trainspec/v1/*_pb2*.py proto/trainspec/v1/*_pb2*.pyi
"$python" -m grpc_tools.protoc -Iproto \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/trainspec/v1/*.proto
# protoc writes a _grpc module for every file; keep only those that define a service.
for f in proto/trainspec/v1/*_pb2_grpc.py; do
  grep -q 'class .*Stub' "$f" || rm -f "$f" "${f}i"
done
