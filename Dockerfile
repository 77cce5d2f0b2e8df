# Strata's image: the web app, the Celery worker, beat and the migrations all run
# from it (docker-compose.yml runs each one). By hand, with the settings of
# README.md's production section in an env file:
#   docker build -t strata .
#   docker run --env-file strata.env strata python manage.py migrate --noinput
#   docker run --env-file strata.env -p 8000:8000 strata    # web: gunicorn, the default command
#   docker run --env-file strata.env strata celery -A config worker --loglevel INFO
#   docker run --env-file strata.env strata celery -A config beat --loglevel INFO --schedule /var/lib/strata/celerybeat-schedule

FROM python:3.11-slim-bookworm AS build
# Every requirement is published as a binary wheel (psycopg[binary], pyarrow, blake3,
# fastcdc, ...), so this stage needs no compiler; --only-binary makes a missing
# wheel fail the build here rather than half-way through a source build.
RUN python -m venv /opt/venv
COPY requirements.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --only-binary=:all: \
        -r /tmp/requirements.txt


FROM python:3.11-slim-bookworm AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DEBUG=0 \
    STRATA_VAR_DIR=/var/lib/strata \
    STATIC_ROOT=/app/staticfiles \
    WEB_CONCURRENCY=3
# The code belongs to root and is read-only to the app; only /var/lib/strata (the
# pack spool, the stat cache and beat's schedule) is the app user's.
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/strata --no-create-home strata \
    && install -d -o strata -g strata /var/lib/strata
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY config/ config/
COPY strata_store/ strata_store/
COPY catalog/ catalog/
COPY cards/ cards/
COPY lineage/ lineage/
COPY registry/ registry/
COPY lifecycle/ lifecycle/
COPY governance/ governance/
COPY changes/ changes/
COPY ops/ ops/
COPY strata_client/ strata_client/
COPY templates/ templates/
COPY static/ static/
# Static files are collected into the image once; WhiteNoise serves them from
# gunicorn. With DEBUG off the settings insist on a key: this one is for this
# command only and is not kept in the image.
RUN SECRET_KEY=collectstatic-only STRATA_VAR_DIR=/tmp/strata-build python manage.py collectstatic --noinput \
    && rm -rf /tmp/strata-build \
    && python -m compileall -q config strata_store catalog cards lineage registry lifecycle governance ops strata_client
USER 10001:10001
EXPOSE 8000
# Slim images have no curl; Python's urllib fails (exit 1) on anything but 2xx.
# The Host header is one ALLOWED_HOSTS has to accept (docker-compose.yml adds it).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8000/healthz', headers={'Host': 'localhost'}), timeout=4)"]
# gunicorn takes its number of processes from WEB_CONCURRENCY. Threaded workers keep
# answering their master during a long upload or download, so it does not kill them.
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--worker-class", "gthread", "--threads", "4", "--access-logfile", "-", "--error-logfile", "-"]
