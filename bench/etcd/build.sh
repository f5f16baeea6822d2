#!/usr/bin/env bash
# Builds bench/etcd/etcd_bench.go, the etcd reference client, into OUT (once; later calls
# reuse the binary while the source is unchanged).
#
#   bench/etcd/build.sh build/bench/etcd_bench
#
# Debian's etcd client (golang-etcd-server-dev) needs the protobuf 1.3 Go API, which
# cannot be installed beside the 1.5 API that generated stubs and grpcurl need. So the Go
# sources it depends on are unpacked into a private GOPATH next to OUT (apt-get download
# + dpkg-deb -x, nothing installed system-wide) and built in GOPATH mode. Needs golang-go.
set -euo pipefail
out=$(realpath -m "$1")
src=$(dirname "$(realpath "$0")")/etcd_bench.go
if [ -x "$out" ] && [ "$out" -nt "$src" ]; then
  exit 0
fi
work=$(dirname "$out")/etcd-gopath
mkdir -p "$work/debs" "$work/root" "$work/src/etcd_bench"
# The client's direct dependencies, and what those need beyond them; the 1.5 protobuf API
# (golang-github-golang-protobuf-1-5-dev) is left out on purpose.
packages=(golang-etcd-server-dev golang-github-golang-protobuf-1-3-dev golang-google-genproto-dev
  golang-google-protobuf-dev golang-go.uber-atomic-dev golang-go.uber-multierr-dev
  golang-golang-x-text-dev)
while read -r pkg; do packages+=("$pkg"); done < <(apt-cache depends golang-etcd-server-dev |
  awk '/ Depends: golang-/ {print $2}')
(cd "$work/debs" && apt-get -o APT::Sandbox::User=root download "${packages[@]}" >/dev/null)
for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$work/root"; done
cp "$src" "$work/src/etcd_bench/"
(cd "$work/src/etcd_bench" &&
  GO111MODULE=off GOPATH="$work:$work/root/usr/share/gocode" GOCACHE="$work/cache" \
    GOFLAGS= go build -o "$out" .)
echo "built $out"
