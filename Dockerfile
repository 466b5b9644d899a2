# lossd container: build stage runs `make`; the runtime stage has only lossd and its libraries.
#
#   podman build -t lossd .            (docker build works the same)
#   podman run -p 8080:8080 -v lossd-state:/var/lib/lossd lossd
#
# BASE lets an offline builder point FROM at a locally made Debian 12 image (make test-image).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential pkg-config libmicrohttpd-dev libuv1-dev libjansson-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY lib lib
COPY server server
COPY proto proto
COPY tests/deps.sh tests/deps.sh
# The dependency stamp is made by hand: the packages were installed just above.
RUN mkdir -p build && touch build/.deps-ok && make -j"$(nproc)" build/lossd && strip build/lossd

FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libmicrohttpd12 libuv1 libjansson4 \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc /usr/share/man \
 && groupadd --system --gid 10001 lossd \
 && useradd --system --uid 10001 --gid lossd --home-dir /var/lib/lossd --shell /usr/sbin/nologin lossd \
 && mkdir -p /var/lib/lossd && chown lossd:lossd /var/lib/lossd
COPY --from=build /src/build/lossd /usr/local/bin/lossd
USER 10001:10001
ENV LOSSD_LISTEN=0.0.0.0:8080 \
    LOSSD_STATE_DIR=/var/lib/lossd \
    LOSSD_DRAIN_DELAY=5000
EXPOSE 8080
VOLUME ["/var/lib/lossd"]
STOPSIGNAL SIGTERM
# A probe without curl in the image: bash's /dev/tcp sends the request.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /healthz HTTP/1.0\\r\\n\\r\\n' >&3 && grep -q '200 OK' <&3"]
ENTRYPOINT ["/usr/local/bin/lossd"]
