FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY windows windows
COPY scoring scoring
COPY stream stream
COPY sinks sinks
RUN pip install --no-cache-dir .
# Prometheus metrics (HEALTHSTREAM_METRICS_PORT; 0 turns them off)
EXPOSE 9464
ENTRYPOINT ["healthstream"]
CMD ["worker", "--loglevel", "info"]
