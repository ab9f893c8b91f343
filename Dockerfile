# otter-service: the HTTP service and its workers. Grading runs in separate containers of
# the grader image (deployment/grader/Dockerfile or scripts/build-grader-image.sh), which
# this container starts through the Docker engine: mount the engine's socket (and add its
# group) or set DOCKER_HOST.
#
#   docker build -t otter-service .
#   docker run -d -p 127.0.0.1:10101:10101 -v otter-data:/data \
#     -v /var/run/docker.sock:/var/run/docker.sock --group-add $(stat -c %g /var/run/docker.sock) \
#     -e JUPYTERHUB_API_URL=http://hub:8081/hub/api -e JUPYTERHUB_API_TOKEN=... otter-service
#
# Base images are build arguments, for sites with their own registry mirror.
ARG RUST_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${RUST_IMAGE} AS build
# Marks the builder stage's image, which nothing tags: scripts/build-service-image.sh
# removes it after a build (docker image prune --filter label=otter-service.stage=build).
LABEL otter-service.stage=build
WORKDIR /src
# Dependencies first, in their own layer: a change to src/ does not rebuild them. Cargo
# wants a file for every [[bench]] of Cargo.toml: empty ones, named from it.
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches \
 && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
 && grep -A1 '^\[\[bench\]\]' Cargo.toml | sed -n 's|^name = "\(.*\)"|benches/\1.rs|p' | xargs touch \
 && cargo build --release --locked \
 && rm -rf src
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin otter-service

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && /usr/sbin/useradd --system --uid 10101 --home-dir /data otter \
 && mkdir -p /data && chown otter /data
COPY --from=build /src/target/release/otter-service /usr/local/bin/otter-service
# The demo course; mount your own course config and autograder zips over /srv/course.
COPY course_config /srv/course
ENV OTTER_SERVER__BIND=0.0.0.0:10101 \
    OTTER_DATABASE__PATH=/data/otter-service.db \
    OTTER_COURSE__CONFIG=/srv/course/course-config.json \
    OTTER_COURSE__MATERIALS_ROOT=/srv/course/materials \
    OTTER_GRADING__RUNNER=docker
VOLUME ["/data", "/srv/course"]
USER otter
EXPOSE 10101
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:10101/healthz || exit 1
ENTRYPOINT ["otter-service"]
CMD ["serve"]
