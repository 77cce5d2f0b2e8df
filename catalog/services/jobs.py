"""Queueing work for a worker from a service, by the task's name.

Task modules import the services their tasks call, so a service cannot import
a task module back without a cycle. It names the task instead: the registered
name (``<app>.tasks.<function>``) is part of the task's contract anyway — the
beat schedule in settings names tasks the same way.

The Celery app itself is named in settings (``STRATA_CELERY_APP``), as Django
names its WSGI application, so this module reaches it without importing the
project's configuration package.
"""

from __future__ import annotations

from celery import Celery
from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string


def celery_app() -> Celery:
    """The project's Celery app (configured from settings)."""
    return import_string(settings.STRATA_CELERY_APP)


def job_send(task_name: str, *args: object) -> None:
    """Queue `task_name` with `args` now; run it in this process when tasks are
    eager (a local convenience, never production)."""
    app = celery_app()
    if app.conf.task_always_eager:
        app.loader.import_default_modules()
        app.tasks[task_name].apply(args=args)
    else:
        app.send_task(task_name, args=args)


def job_enqueue(task_name: str, *args: object) -> None:
    """Queue `task_name` with `args` once the current transaction commits, so the
    worker reads what the transaction wrote (at once outside a transaction)."""
    transaction.on_commit(lambda: job_send(task_name, *args))
