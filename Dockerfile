# Image for the api, gpu-worker and cpu-worker services of docker-compose.yml.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gradwalk ./gradwalk
COPY platform ./platform
COPY workers ./workers
COPY graph ./graph
COPY migrations ./migrations
RUN pip install --no-cache-dir ".[worker]"
ENV HF_HUB_OFFLINE=1
USER nobody
