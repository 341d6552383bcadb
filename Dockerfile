# One image for every process of the stack: migrations, workers, beat, the CLI.
FROM python:3.11-slim

# MALLOC_ARENA_MAX=2: glibc gives each thread its own malloc arena; an export's category
# threads then fragment memory and the peak creeps up with the size of the export.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
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
