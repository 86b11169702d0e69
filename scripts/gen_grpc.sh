#!/usr/bin/env bash
# Regenerate the checked-in protobuf modules of satchel's gRPC protocol from its .proto.
# A developer tool: needs grpcio-tools (pip install grpcio-tools); installs never run it.
# The generated code needs a protobuf runtime at least as new as the protoc used here
# (its header says which): keep pyproject's protobuf floor in step.
set -euo pipefail
cd "$(dirname "$0")/../serving/protocols"
PYTHON=${PYTHON:-python}
"$PYTHON" -m grpc_tools.protoc -I. --python_out=. --pyi_out=. satchel_inference.proto
head -5 satchel_inference_pb2.py | grep -i 'version' || true
