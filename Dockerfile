# Strata: web, worker and beat from one image.
#   docker build -t strata .
#   docker run -e SECRET_KEY=... -e DATABASE_URL=... -e STORAGE_URL=s3://... strata
FROM python:3.11-slim AS build
WORKDIR /app
COPY requirements.txt .
RUN python -m venv /venv && /venv/bin/pip install --no-cache-dir -r requirements.txt gunicorn==23.0.0
COPY . .
# Static files are collected at build time; DEBUG off needs a key even for that.
RUN SECRET_KEY=build-only DEBUG=0 STRATA_VAR_DIR=/tmp/var STATIC_ROOT=/app/staticfiles \
    /venv/bin/python manage.py collectstatic --noinput


FROM python:3.11-slim
RUN useradd --create-home --uid 1000 strata
COPY --from=build /venv /venv
COPY --from=build --chown=strata /app /app
WORKDIR /app
ENV PATH=/venv/bin:$PATH DEBUG=0 STRATA_VAR_DIR=/var/lib/strata STATIC_ROOT=/app/staticfiles PYTHONUNBUFFERED=1
RUN mkdir -p /var/lib/strata && chown strata /var/lib/strata
USER strata
EXPOSE 8000
# Worker: celery -A config worker; beat: celery -A config beat
CMD ["gunicorn", "config.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
