# syncd container image (docs/deploy.md).
#
# Build:  docker build -t syncd .
# Run:    docker run --read-only --tmpfs /tmp \
#           -v /srv/syncd/etc:/etc/syncd:ro \
#           -v /srv/syncd/secrets:/run/secrets/syncd:ro \
#           -v syncd-state:/var/lib/syncd \
#           -p 127.0.0.1:8090:8090 syncd
#
# Mounts:
#   /etc/syncd/syncd.toml   the configuration ($SYNCD_CONFIG), read-only; its
#                           [admin] host must be "0.0.0.0" to be reachable
#                           from outside the container
#   /run/secrets/syncd/     secrets, one file each, referred to by X_file keys
#   /var/lib/syncd/         writable: [publish] token_store (rotated tokens)
# The error table ships inside the package (syncd/config/error-table.toml), the
# default when [publish] error_table is empty.

# One pinned base for both stages: the venv's interpreter links are only valid
# on the same Python build.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# -- builder: the venv. Every dependency ships binary wheels, so no compiler is
# needed; one that ever must build from source gets its tools here, never in the
# runtime stage. pip itself is removed from the venv once it is done.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY syncd ./syncd
RUN python -m venv /opt/syncd/venv \
    && /opt/syncd/venv/bin/pip install --no-cache-dir . \
    && /opt/syncd/venv/bin/pip uninstall --yes pip

# -- runtime: the venv, an unprivileged user ------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="syncd" \
      org.opencontainers.image.description="Keeps marketplace stock numbers true without overselling."
RUN groupadd --system --gid 10001 syncd \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin syncd \
    && mkdir -p /etc/syncd /run/secrets/syncd /var/lib/syncd \
    && chown 10001:10001 /var/lib/syncd \
    && chmod 0700 /var/lib/syncd
COPY --from=builder /opt/syncd/venv /opt/syncd/venv
WORKDIR /var/lib/syncd
ENV PATH=/opt/syncd/venv/bin:$PATH \
    SYNCD_CONFIG=/etc/syncd/syncd.toml \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
VOLUME ["/var/lib/syncd"]
USER 10001:10001
# The admin server: /healthz, /readyz, /metrics, the operator page.
EXPOSE 8090
# No curl in the slim image: the standard library asks /healthz (non-2xx raises).
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8090/healthz', timeout=4)"]
# SIGTERM: finish in-flight pushes ([publish] stop_deadline_s), commit, exit 0.
# syncd installs its own handlers, so it runs as PID 1 without an init.
STOPSIGNAL SIGTERM
ENTRYPOINT ["syncd"]
CMD ["run"]
