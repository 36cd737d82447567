# jwt-issuer container image: a release build in the full Rust image, then only the binary and
# the libraries it links (libpq) in a slim Debian image, run as a non-root user.
#
#   docker build -t jwt-issuer .
#   docker run -d -p 8080:8080 -v issuer-data:/data -v issuer-keys:/keys jwt-issuer
#
# /data holds the SQLite database (unless DATABASE_URL names PostgreSQL), /keys the
# key-encryption keys and the bootstrap admin password: back both up (README, "Running in
# production").

FROM rust:1.95-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY verify verify
COPY benches benches
COPY examples examples
# The flags CI runs too (.ci/run builds with exactly this line), so the image's build is tested
# without a container engine.
RUN cargo build --locked --release --bin jwt-issuer

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpq5 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /nonexistent --shell /usr/sbin/nologin issuer \
    && mkdir -p /data /keys \
    && chown issuer:issuer /data /keys \
    && chmod 0700 /data /keys
COPY --from=build /src/target/release/jwt-issuer /usr/local/bin/jwt-issuer
USER 10001:10001
ENV DATABASE_URL=sqlite:///data/issuer.db \
    ISSUER_KEYS_DIR=/keys \
    ISSUER_BIND=0.0.0.0:8080 \
    ISSUER_LOG_FORMAT=json
VOLUME ["/data", "/keys"]
EXPOSE 8080
# `jwt-issuer healthcheck` asks GET /healthz of the address ISSUER_BIND names (no curl needed).
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["jwt-issuer", "healthcheck"]
ENTRYPOINT ["jwt-issuer"]
CMD ["serve"]
