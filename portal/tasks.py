"""Queueing background work on django-q2; the job row is the record, a task gets its id."""

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task


def enqueue(func_path: str, *args, **kwargs):
    """Queue ``func_path(*args)`` once the current transaction commits.

    With TASKS_RUN_INLINE (tests) the task runs in this process right after the commit.
    """

    def send():
        async_task(func_path, *args, sync=settings.TASKS_RUN_INLINE, **kwargs)

    transaction.on_commit(send)
