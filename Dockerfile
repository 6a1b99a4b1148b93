# syntax=docker/dockerfile:1
# smpp-bridge image: a wheel built in the first stage, installed into a slim runtime.
#   docker build -t smpp-bridge .
#   docker run -d --name smpp-bridge -e SMPP_BRIDGE_PASSWORD=change1 \
#     -p 2775:2775 -p 8080:8080 -v smpp-bridge-state:/var/lib/smpp-bridge smpp-bridge
# Real accounts and providers: mount a config over /etc/smpp-bridge/bridge.toml (see
# config/docker.toml for what the container needs: both listeners on 0.0.0.0).

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
# A C compiler for the compiled modules (bridge/native.py), in this stage only: the
# wheel carries them. Versions are those of the base image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml setup.py README.md ./
COPY bridge ./bridge
# The project and every dependency as wheels, so the runtime stage needs no compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[fast,redis]"

FROM python:3.11-slim
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 smpp-bridge \
    && useradd --system --uid 10001 --gid smpp-bridge --home-dir /var/lib/smpp-bridge \
       --no-create-home --shell /usr/sbin/nologin smpp-bridge \
    && install -d -o smpp-bridge -g smpp-bridge -m 0750 /var/lib/smpp-bridge \
    && install -d -o root -g smpp-bridge -m 0750 /etc/smpp-bridge
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels /wheels/*.whl
COPY --chown=root:smpp-bridge --chmod=0640 config/docker.toml /etc/smpp-bridge/bridge.toml

USER 10001:10001
WORKDIR /var/lib/smpp-bridge
VOLUME ["/var/lib/smpp-bridge"]
# 2775: SMPP; 8080: /metrics, /healthz, /readyz and provider callbacks.
EXPOSE 2775 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
# SIGTERM (docker stop) drains for [smpp] shutdown_timeout: give docker stop -t 30.
STOPSIGNAL SIGTERM
ENTRYPOINT ["smpp-bridge"]
CMD ["run", "--config", "/etc/smpp-bridge/bridge.toml"]
