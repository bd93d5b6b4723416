# diffusion-viz: CPU image (default) or GPU image (--build-arg TORCH_VARIANT=cu128, run with --gpus all).
#   docker build -t diffusion-viz .
#   docker run --rm -p 7860:7860 diffusion-viz            -> http://localhost:7860
FROM python:3.11-slim

ARG TORCH_VARIANT=cpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    DIFFUSION_VIZ_HOST=0.0.0.0 \
    DIFFUSION_VIZ_PORT=7860 \
    HF_HOME=/app/.cache/huggingface

WORKDIR /app
# DejaVu: the captions of GIF/MP4 frames (the slim image has no fonts); curl: the health check.
RUN apt-get update && apt-get install -y --no-install-recommends fonts-dejavu-core curl \
    && rm -rf /var/lib/apt/lists/*
# torch first, from the index that matches the variant (CPU: ~200 MB instead of several GB of CUDA).
RUN pip install --index-url https://download.pytorch.org/whl/${TORCH_VARIANT} torch==2.13.0
COPY requirements.txt .
RUN grep -v -E '^(torch|pytest|playwright)' requirements.txt > /tmp/req.txt && pip install -r /tmp/req.txt

COPY . .
RUN pip install --no-deps -e . && useradd --create-home app && mkdir -p /app/.cache && chown -R app /app/.cache
USER app
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s CMD curl -fsS http://127.0.0.1:7860/ >/dev/null || exit 1
CMD ["python", "app.py"]
