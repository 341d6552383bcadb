# One image for every process of the stack: migrations, the API, workers, beat, the CLI.
# Built in two stages: the wheels are installed into a venv with every version pinned by
# constraints.txt (reproducible builds), and only that venv is copied into the slim runtime,
# which runs as an unprivileged user.
FROM python:3.11.7-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY constraints.txt pyproject.toml README.md ./
# Dependencies first (a layer that changes only with constraints.txt), then our code.
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/venv/bin/pip install -c constraints.txt -r requirements.txt
COPY portability ./portability
COPY workers ./workers
COPY schedules ./schedules
RUN /opt/venv/bin/pip install -c constraints.txt --no-deps .

FROM python:3.11.7-slim-bookworm

# MALLOC_ARENA_MAX=2: glibc gives each thread its own malloc arena; an export's category
# threads then fragment memory and the peak creeps up with the size of the export.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=2 \
    PATH=/opt/venv/bin:$PATH \
    PORTABILITY_DATA_DIR=/home/portability/data
RUN useradd --create-home --uid 10001 portability
COPY --from=build /opt/venv /opt/venv
USER portability
WORKDIR /home/portability
RUN mkdir -p /home/portability/data
CMD ["portability", "--help"]
