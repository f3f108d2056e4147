# syntax=docker/dockerfile:1
#
# Ironclad container image.
#
#   docker build -t ironclad .
#   docker compose --profile app up -d      # app + Postgres, see docker-compose.yml
#
# Needs BuildKit (the default builder of Docker 23+) for the cache mounts below.

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /app
# rust-toolchain.toml names 1.95.0, the toolchain this image installs; rustup adds the rustfmt and
# clippy components it lists on the first cargo call (the build stage has the network).

# The whole source goes in at once: every workspace member (".", "migrations",
# "tools/bench", "tools/fake-stripe", "tools/fake-llm" today) is picked up without listing it
# here, so the manifest resolves; .dockerignore keeps target/, .data/, .git/
# and .env out of the context. Only the `ironclad` binary is built, and only it
# and templates/ reach the runtime image: the bench and the fakes never
# ship.
# Dependency caching comes from the cache mounts: the crates.io registry and
# target/ survive between builds, so a source change rebuilds only our crates.
COPY . .

# target/ is a cache mount, so it is gone after this RUN: copy the binary out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/app/target \
    cargo build --release --locked --bin ironclad \
 && cp target/release/ironclad /usr/local/bin/ironclad

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim

# ca-certificates only: TLS to SMTP/Stripe/etc. needs the system roots.
# Versions are not pinned on purpose: bookworm's archive only carries the
# current (security-patched) version, so a pin would break the build as soon
# as Debian ships an update.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system --gid 10001 ironclad \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /nonexistent --shell /usr/sbin/nologin ironclad

WORKDIR /app
COPY --from=builder /usr/local/bin/ironclad /app/ironclad
COPY templates/ /app/templates/

ENV APP_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080

USER 10001:10001
EXPOSE 8080

# No HEALTHCHECK: the slim image has no curl/wget, and adding one only for
# that grows the image and its attack surface. Orchestrators should probe the
# HTTP health endpoint themselves (compose/Kubernetes/load balancer).

ENTRYPOINT ["/app/ironclad"]
CMD ["serve"]
