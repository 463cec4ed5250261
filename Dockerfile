# The proxy alone (for docker-compose's "proxy" profile): it talks HTTP to the host's
# mlx_lm.server, so the image needs neither MLX nor the model, only the proxy's own libraries.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY proxy ./proxy
COPY launcher ./launcher
RUN pip install --no-cache-dir --no-deps . \
 && pip install --no-cache-dir "aiohttp>=3.9" "orjson>=3.9" "redis[hiredis]>=5.0" "prometheus-client>=0.20"
USER nobody
EXPOSE 8081
ENTRYPOINT ["mlx-proxy"]
