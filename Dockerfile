# Statelock: the sidecar with the libvirt and XenAPI drivers.
# Build: docker build -t statelock .   Run: docker run -p 8774:8774 -v /etc/statelock:/etc/statelock statelock
FROM python:3.11-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc pkg-config libvirt-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sidecar ./sidecar
COPY drivers ./drivers
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[libvirt,xenapi]'

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvirt0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/statelock --create-home statelock \
 && mkdir -p /var/log/statelock /etc/statelock \
 && chown statelock /var/log/statelock
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/* && rm -rf /wheels
WORKDIR /opt/statelock
COPY config ./config
COPY policies ./policies
USER statelock
ENV STATELOCK_LISTEN=0.0.0.0:8774
EXPOSE 8774
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:' + os.environ['STATELOCK_LISTEN'].rsplit(':',1)[1] + '/statelock/v1/livez', timeout=2)"
ENTRYPOINT ["statelock"]
CMD ["serve", "--config", "/etc/statelock/statelock.yaml"]
