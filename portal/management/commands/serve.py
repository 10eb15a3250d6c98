import os
import signal
import subprocess
import sys

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the portal with daphne and run the django-q2 worker beside it (embedded mode)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=os.environ.get("PORTAL_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORTAL_PORT", "8000")))
        parser.add_argument(
            "--no-worker", action="store_true", help="serve only; run qcluster elsewhere"
        )

    def handle(self, *args, host, port, no_worker, **options):
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        children = []
        if not no_worker:
            children.append(subprocess.Popen([*manage, "qcluster"]))
        web = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", host, "-p", str(port), "portal.asgi:application"]
        )
        children.append(web)
        self.stdout.write(f"Backup Portal is serving http://{host}:{port}/ (Ctrl-C stops it)")

        def stop(*_):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        try:
            web.wait()
        except KeyboardInterrupt:
            pass
        finally:
            stop()
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
