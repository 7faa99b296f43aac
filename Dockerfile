FROM python:3.11-slim
WORKDIR /src
# constraints.txt pins every dependency to what the tests ran with (make constraints)
COPY constraints.txt pyproject.toml README.md ./
COPY windows windows
COPY scoring scoring
COPY stream stream
COPY sinks sinks
COPY telemetry telemetry
COPY healthstream healthstream
RUN pip install --no-cache-dir --constraint constraints.txt .

# run as a user of its own; the worker's state directory (.healthstream-data) is in its home
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/healthstream healthstream
USER healthstream
WORKDIR /var/lib/healthstream

# Prometheus metrics (HEALTHSTREAM_METRICS_PORT; 0 turns them off, and with them this check)
EXPOSE 9464 6066
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('HEALTHSTREAM_METRICS_PORT', '9464') + '/metrics', timeout=4)"]
ENTRYPOINT ["healthstream"]
CMD ["worker", "--loglevel", "info"]
