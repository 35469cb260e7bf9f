# The harness as a container image, for the Kubernetes Indexed Job in deploy/k8s/
# (or any machine with a container runtime). Built from the repository root:
#
#   docker build -f deploy/harness.Dockerfile -t cache-bench-harness:latest .
#
# Only the harness is built (not the worker): one release binary on a slim base
# with the CA certificates https:// targets need.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p harness \
    && cp target/release/harness /usr/local/bin/harness

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /usr/local/bin/harness /usr/local/bin/harness
# Results go to a mounted volume; nothing runs as root.
USER 65532:65532
WORKDIR /results
ENTRYPOINT ["harness"]
CMD ["--help"]
