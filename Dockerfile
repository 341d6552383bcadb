# One image for every process of the stack: migrations, workers, beat, the CLI.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY portability ./portability
COPY workers ./workers
COPY schedules ./schedules
RUN pip install . && useradd --create-home --uid 10001 portability
USER portability
ENV PORTABILITY_DATA_DIR=/home/portability/data
CMD ["portability", "--help"]
