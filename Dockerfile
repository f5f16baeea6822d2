# chainscale images: built on debian:bookworm, run on debian:bookworm-slim with only the
# runtime libraries, as a non-root user. One image holds every binary; compose.yaml picks
# the command.
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      cmake ninja-build g++ pkg-config \
      protobuf-compiler protobuf-compiler-grpc libprotobuf-dev libgrpc++-dev \
      librocksdb-dev libabsl-dev libboost1.81-dev libssl-dev golang-github-gogo-googleapis-dev grpc-proto \
 && rm -rf /var/lib/apt/lists/*
# Only what the build reads, so edits to docs or tests reuse the cached build.
COPY CMakeLists.txt /src/
COPY proto /src/proto
COPY common /src/common
COPY control_plane /src/control_plane
COPY agent /src/agent
COPY tools /src/tools
COPY console /src/console
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCHAINSCALE_BUILD_TESTS=OFF -DCHAINSCALE_BUILD_BENCH=OFF \
 && cmake --build /build --target chainscale-control-plane chainscale-agent \
      chainscale-loadgen chainscale chainscale-health chainscale-actuator chainscale-reporter \
      chainscale-replica \
 && strip /build/control_plane/chainscale-control-plane /build/agent/chainscale-agent \
      /build/tools/chainscale-loadgen /build/tools/chainscale /build/tools/chainscale-health \
      /build/tools/chainscale-actuator /build/tools/chainscale-reporter \
      /build/tools/chainscale-replica

FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libssl3 \
      libsnappy1v5 liblz4-1 libzstd1 libbz2-1.0 zlib1g libgflags2.2 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/chainscale --shell /usr/sbin/nologin chainscale \
 && mkdir -p /var/lib/chainscale /usr/share/chainscale \
 && chown chainscale:chainscale /var/lib/chainscale
COPY --from=build /build/control_plane/chainscale-control-plane /build/agent/chainscale-agent \
     /build/tools/chainscale-loadgen /build/tools/chainscale /build/tools/chainscale-health \
     /build/tools/chainscale-actuator /build/tools/chainscale-reporter \
     /build/tools/chainscale-replica /usr/local/bin/
COPY tools/testdata/sample_trace.csv /usr/share/chainscale/sample_trace.csv
USER chainscale
WORKDIR /var/lib/chainscale
EXPOSE 50051 8080 50061 8081
CMD ["chainscale-control-plane", "--help"]
