# digest in a container: the wheel (code, templates, migrations) built in one stage
# and installed, with its run-time dependencies only (no dev or semantic extras), in
# a slim image that runs as an unprivileged user. Default command: `digest run`.
#   docker build -t digest .
#   docker run -v ./config.toml:/etc/digest/config.toml:ro \
#       -e DIGEST_CONFIG=/etc/digest/config.toml -e DIGEST_WEB__SECRET=... digest
# compose.yaml runs it with PostgreSQL. Settings: a mounted file named by
# DIGEST_CONFIG, and/or DIGEST_* variables (README: Configuration).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY alembic/ alembic/
COPY templates/ templates/
COPY digest/ digest/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/digest/bin:$PATH
COPY --from=build /wheels/ /tmp/wheels/
RUN python -m venv /opt/digest \
    && /opt/digest/bin/pip install --no-cache-dir /tmp/wheels/digest-*.whl \
    && rm -rf /tmp/wheels \
    && useradd --system --uid 10001 --user-group --create-home \
        --home-dir /var/lib/digest --shell /usr/sbin/nologin digest
USER digest
# Relative paths in the settings (var/digest.db, var/maildir, var/dumps,
# var/web-secret) land here; mount a volume to keep them.
WORKDIR /var/lib/digest
VOLUME ["/var/lib/digest"]
EXPOSE 8080
ENTRYPOINT ["digest"]
CMD ["run"]
