# rotator in a container: `docker run -v rotator-state:/var/lib/rotator -v ./etc:/etc/rotator:ro rotator`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rotator ./rotator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="rotator" \
      org.opencontainers.image.description="Zero-downtime rotation of SaaS API keys"
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --home-dir /var/lib/rotator --shell /usr/sbin/nologin rotator \
    && mkdir -p /var/lib/rotator /etc/rotator \
    && chown rotator:rotator /var/lib/rotator \
    && chmod 0700 /var/lib/rotator
ENV ROTATOR_CONFIG=/etc/rotator/rotator.yaml \
    STATE_DIRECTORY=/var/lib/rotator \
    PYTHONUNBUFFERED=1
VOLUME ["/var/lib/rotator"]
USER 10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s CMD ["python", "-c", "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9464/healthz').status != 200)"]
ENTRYPOINT ["rotator"]
CMD ["run"]
