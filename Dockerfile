# Statelock: the sidecar with the libvirt and XenAPI drivers.
# Build: docker build -t statelock .
# Run:   docker run -p 8774:8774 -v /etc/statelock:/etc/statelock -v statelock-state:/var/lib/statelock \
#          -v statelock-logs:/var/log/statelock statelock
# The image installs exactly as `make install` does: scripts/install.sh (the runtime packages of
# scripts/system-deps.sh, then a virtualenv with Statelock), so what the tests cover is what ships.
# OPA is built as `make opa` builds it (scripts/build-opa.sh): the embedded policy engine compiles
# the bundle with `opa build -t wasm` at start and on every reload.
FROM golang:1.26-bookworm AS opa
COPY scripts/build-opa.sh /build-opa.sh
RUN /build-opa.sh v1.22.2 /opt/opa/bin

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY sidecar ./sidecar
COPY drivers ./drivers
RUN apt-get update \
 && PYTHON=python3.11 ./scripts/install.sh /opt/statelock/venv \
 && rm -rf /var/lib/apt/lists/*

FROM python:3.11-slim-bookworm
# NOTE: libvirt0 is the runtime library libvirt-python links against (libvirt-dev is build-only).
RUN apt-get update \
 && apt-get install -y --no-install-recommends libvirt0 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /var/lib/statelock --create-home --shell /usr/sbin/nologin statelock \
 && mkdir -p /var/log/statelock /etc/statelock \
 && chown statelock:statelock /var/log/statelock /var/lib/statelock \
 && chmod 0750 /var/log/statelock /var/lib/statelock
COPY --from=build /opt/statelock/venv /opt/statelock/venv
COPY --from=opa /opt/opa/bin/opa /usr/local/bin/opa
WORKDIR /opt/statelock
COPY config ./config
COPY policies ./policies
USER statelock
# The decision log, checkpoints, signing key and lock table are created 0640/0600 regardless.
ENV PATH=/opt/statelock/venv/bin:$PATH STATELOCK_LISTEN=0.0.0.0:8774
EXPOSE 8774
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen('http://127.0.0.1:' + os.environ['STATELOCK_LISTEN'].rsplit(':',1)[1] + '/statelock/v1/readyz', timeout=2)"
ENTRYPOINT ["statelock"]
CMD ["serve", "--config", "/etc/statelock/statelock.yaml"]
