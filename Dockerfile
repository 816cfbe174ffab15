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
ENV SYNCD_CONFIG=/etc/syncd/syncd.toml PYTHONUNBUFFERED=1
ENTRYPOINT ["syncd"]
CMD ["run"]
