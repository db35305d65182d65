# rotator in a container: `docker run -v rotator-state:/var/lib/rotator -v ./etc:/etc/rotator:ro rotator`
#
# Reproducible: the base image is pinned by digest (the multi-arch index of python:3.11-slim-bookworm;
# refresh with `docker buildx imagetools inspect python:3.11-slim-bookworm`) and every dependency by
# version in constraints.txt (`make constraints` regenerates it).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:b18992999dbe963a45a8a4da40ac2b1975be1a776d939d098c647482bcad5cba

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY rotator ./rotator
RUN pip install --no-cache-dir --prefix=/install --constraint constraints.txt '.[postgres]'

FROM ${PYTHON_IMAGE}
# the label says the version that runs; a test keeps this default equal to pyproject.toml's
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Zero-downtime rotation of SaaS API keys" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm"
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/rotator --shell /usr/sbin/nologin rotator \
    && mkdir -p /var/lib/rotator /etc/rotator \
    && chown rotator:rotator /var/lib/rotator \
    && chmod 0700 /var/lib/rotator
# listening on every address of the container, the port EXPOSE names (rotator's own default is
# loopback only, which nothing outside the container reaches); the environment wins over
# rotator.yaml, so change it here or with `docker run -e ROTATOR_DAEMON__LISTEN=…`
ENV ROTATOR_CONFIG=/etc/rotator/rotator.yaml \
    STATE_DIRECTORY=/var/lib/rotator \
    ROTATOR_DAEMON__LISTEN=0.0.0.0:9464 \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/rotator"]
USER 10001
EXPOSE 9464
# asks the daemon where daemon.listen (rotator.yaml or ROTATOR_DAEMON__LISTEN) says it is
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s CMD ["rotator", "health", "--timeout", "5"]
ENTRYPOINT ["rotator"]
CMD ["run"]
