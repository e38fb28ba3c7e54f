# syntax=docker/dockerfile:1
# nhid in a container: `docker build -t nhid .`, then `docker run nhid run --brokers ...`.
# The simulator's tool is a stage of its own (`docker build --target sim -t nhid-sim .`), so
# the nhid image holds only the production binary. docker-compose.yml builds both for the
# local stack (Kafka, nhid, simulated traffic, Prometheus, Grafana).

# The toolchain the project is developed and tested with (edition 2024, Cargo.lock).
FROM rust:1.95-bookworm AS build
# rdkafka builds librdkafka from source (its own configure script and make, no cmake) with
# TLS and zlib: the C build dependencies .ci/run installs, for the same build.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential libssl-dev zlib1g-dev pkg-config perl \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry and target caches survive between builds (BuildKit); the binary is copied
# out of the cached target directory, which is not part of the image layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin nhid \
 && cp target/release/nhid /usr/local/bin/nhid \
 && cargo build --release --locked --features sim --bin nhid-sim \
 && cp target/release/nhid-sim /usr/local/bin/nhid-sim

# Same Debian release as the builder, so the OpenSSL it linked against (libssl3) is the one here.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/*
# A fixed numeric id, so `runAsNonRoot` and volume ownership can be checked without a passwd file.
RUN groupadd --system --gid 10001 nhid \
 && useradd --system --uid 10001 --gid nhid --home-dir /var/lib/nhid --create-home --shell /usr/sbin/nologin nhid

# The simulator's tool: `nhid-sim simulate|eval|demo`.
FROM runtime AS sim
COPY --from=build /usr/local/bin/nhid-sim /usr/local/bin/nhid-sim
USER 10001:10001
# Writable: `nhid-sim simulate --out` writes here (a named volume mounted here takes this ownership).
WORKDIR /var/lib/nhid
ENTRYPOINT ["nhid-sim"]
CMD ["--help"]

# The production image (the default target: the last stage).
FROM runtime AS nhid
COPY --from=build /usr/local/bin/nhid /usr/local/bin/nhid
USER 10001:10001
# Writable by nhid: `nhid replay --alerts` writes here (a named volume mounted here takes
# this ownership).
WORKDIR /var/lib/nhid
# /metrics, /healthz, /readyz, /principals. The listener is 127.0.0.1 by default; to reach it
# from outside the container set NHID__HTTP__LISTEN=0.0.0.0:9898 and a bearer token for
# /principals (NHID__HTTP__TOKEN_FILE pointing at a mounted secret, or NHID_HTTP_TOKEN):
# nhid refuses a listener off loopback without one.
EXPOSE 9898
ENTRYPOINT ["nhid"]
CMD ["run"]
