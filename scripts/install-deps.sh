#!/usr/bin/env bash
# The single place that installs system packages (Debian 12). Run as root.
# Everything the build, the tests and CI's checks need comes from here.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
  build-essential cmake ninja-build pkg-config python3 ca-certificates \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler libabsl-dev libssl-dev \
  prometheus-cpp-dev libtorch-dev nlohmann-json3-dev libre2-dev \
  libgtest-dev libgmock-dev libbenchmark-dev \
  prometheus docker-compose \
  python3-grpcio python3-protobuf python3-numpy python3-pytest python3-crc32c openssl \
  >/dev/null
