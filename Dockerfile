# syntax=docker/dockerfile:1
# Lowerdir: web app, Celery worker and beat share this image (docker-compose.yml picks the command).
# The base is pinned by digest (refresh with: skopeo inspect docker://docker.io/library/python:3.11-slim-bookworm).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /app
COPY pyproject.toml README.md ./
COPY config ./config
COPY cases ./cases
COPY scanner ./scanner
RUN /opt/venv/bin/pip install -e .

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LOWERDIR_DATA_DIR=/data
# The post-mortem PDF (WeasyPrint) needs Pango, HarfBuzz's subsetter and a font (docs/postmortem.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
       fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin lowerdir \
    && install -d -o lowerdir -g lowerdir -m 0750 /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --from=build /app /app
COPY manage.py ./
COPY templates ./templates
COPY static ./static
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8000
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "3600"]
