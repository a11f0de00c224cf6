# An S3-compatible store for the compose suite and tests: moto's server (in memory), which creates the buckets
# named in XR_S3_BUCKETS at start (s3server.py). Not for production: point the services at a real S3 there.
ARG BASE
ARG BUILDER
FROM ${BUILDER} AS deps
COPY pip/ /pip/
COPY deps/ /wheels/
RUN python3 /pip/pip.whl/pip install --quiet --no-index --no-deps --no-cache-dir --disable-pip-version-check \
      --root-user-action=ignore --target /opt/xrunner/deps /wheels/*.whl \
 && find /opt/xrunner/deps -name '*.so*' -type f -exec strip --strip-unneeded {} +

FROM ${BASE}
COPY --from=deps /opt/xrunner/deps /opt/xrunner/deps
COPY healthcheck.py s3server.py /opt/xrunner/
ENV PYTHONPATH=/opt/xrunner/deps PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp XR_S3_PORT=5000
USER 10001:10001
WORKDIR /tmp
EXPOSE 5000
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
  CMD ["python3", "/opt/xrunner/healthcheck.py", "http://127.0.0.1:5000/moto-api/"]
ENTRYPOINT ["python3", "/opt/xrunner/s3server.py"]
ARG VERSION
ARG REVISION
LABEL org.opencontainers.image.title="xrunner-s3" org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
