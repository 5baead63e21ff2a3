# spotcheck worker image (docker-compose.yml services `worker` and `worker-heavy`).
#   docker build -t spotcheck:local .
#   docker run --rm -e TEMPORAL_ADDRESS=... -e DATABASE_URL=... spotcheck:local
# Keep the build context small with a .dockerignore (.venv, .data, .git, caches).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TZ=Asia/Shanghai

# The service runs as an unprivileged user with a home of its own (the default data dir lives
# there); the installed code stays owned by root and read-only to it.
RUN groupadd --system --gid 10001 spotcheck \
 && useradd --system --uid 10001 --gid spotcheck --create-home --home-dir /home/spotcheck \
      --shell /usr/sbin/nologin spotcheck

# The notices (PDF) need pango and a CJK font; WeasyPrint loads pango when a notice is made.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/spotcheck
COPY . .
RUN pip install . \
 && rm -rf build ./*.egg-info \
 && cd / && python -c "import starter, worker" && spotcheck --help > /dev/null
# ^ a smoke test from outside the source tree: the installed package alone must import (every
#   top-level package the code uses has to be listed in pyproject's packages.find).

USER spotcheck
WORKDIR /home/spotcheck
ENV SPOTCHECK_DATA_DIR=/home/spotcheck/.data

# Every task queue, the heavy draw/dispatch queue in its own process; compose runs one queue per
# service (`spotcheck worker --queue spotcheck` / `--queue spotcheck-heavy`).
CMD ["spotcheck", "worker"]
