# comfyui-gradio: the web app only. ComfyUI runs elsewhere (see docker-compose.yml and README "Docker").
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    GRADIO_SERVER_NAME=0.0.0.0 \
    GRADIO_SERVER_PORT=7860 \
    WORKFLOWS_DIR=/app/workflows \
    OUTPUT_DIR=/tmp/comfyui-gradio/outputs \
    CACHE_DIR=/tmp/comfyui-gradio/cache

# Hugging Face Spaces run containers as uid 1000.
RUN useradd --create-home --uid 1000 user
WORKDIR /app

COPY --chown=user requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY --chown=user comfyui_gradio/ comfyui_gradio/
COPY --chown=user app.py .
COPY --chown=user workflows/ workflows/

USER 1000
EXPOSE 7860
VOLUME ["/app/workflows"]
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:7860/', timeout=4)"]
CMD ["python", "app.py"]
