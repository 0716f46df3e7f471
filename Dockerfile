# The casework image: the worker (`python -m workers`) by default, the sandbox and the codec
# server with another command (see docker-compose.yml). Build with `docker compose build` or `docker build -t casework .`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
# litellm would otherwise fetch its model price map over the network at import time.
ENV LITELLM_LOCAL_MODEL_COST_MAP=True
# State that defaults under CASEWORK_HOME (the sandbox's SQLite file) lands in the /data volume.
ENV CASEWORK_HOME=/data

# Runs as this user; /data is created owned by it, so a fresh named volume mounted there is
# writable (Docker copies the directory's ownership into an empty volume).
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin casework \
    && mkdir -p /data \
    && chown casework:casework /data

WORKDIR /src

# Dependencies first, pinned in pyproject.toml and read from it, so this layer is rebuilt only
# when they change, not on every code edit. No dev extras.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# Then the framework and the catalogue (a regular, non-editable install, owned by root): the
# packages pyproject.toml lists, the policy documents with them.
COPY casework ./casework
COPY workflows ./workflows
COPY activities ./activities
COPY policies ./policies
COPY sandbox ./sandbox
COPY demos ./demos
COPY workers ./workers
COPY evals ./evals
RUN pip install --no-deps . \
    && cd / && rm -rf /src

USER casework
WORKDIR /home/casework

# The sandbox's port, when the image runs it.
EXPOSE 8787

# `python -m workers` stops cleanly on SIGTERM (docker stop).
CMD ["python", "-m", "workers"]
