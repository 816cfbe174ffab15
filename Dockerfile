# syncd container image (first version; hardening comes with the service issue).
# Build:  docker build -t syncd .
# Run:    docker run -v /etc/syncd:/etc/syncd:ro syncd
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY syncd ./syncd
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
RUN useradd --system --uid 10001 --no-create-home syncd
USER 10001
# The error table: [publish] error_table defaults to config/error-table.toml, relative
# to the working directory; operators may mount their own and point to it.
WORKDIR /usr/share/syncd
COPY config/error-table.toml config/error-table.toml
ENV SYNCD_CONFIG=/etc/syncd/syncd.toml PYTHONUNBUFFERED=1
ENTRYPOINT ["syncd"]
CMD ["run"]
