"""The Celery app. A worker starts on either broker:

celery -A config worker            # filesystem broker under var/ by default
CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A config worker --beat
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("strata")
app.config_from_object("django.conf:settings", namespace="CELERY")

_options = app.conf.broker_transport_options or {}
for _key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
    # The filesystem transport needs its folders before the worker starts.
    if _options.get(_key):
        os.makedirs(_options[_key], exist_ok=True)

app.autodiscover_tasks()

# The worker's logging (the same JSON lines as the web), task context and metrics.
import ops.celery  # noqa: E402, F401
