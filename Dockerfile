# The operator image: `docker build -t postmaster .`
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
# Only the operator: dev/ (postmaster_dev, the local control plane for development) is not copied.
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# 65532: the conventional non-root user of distroless images; the chart runs as it too.
USER 65532:65532
ENTRYPOINT ["postmaster"]
CMD ["run", "--liveness=http://0.0.0.0:8080/healthz"]
