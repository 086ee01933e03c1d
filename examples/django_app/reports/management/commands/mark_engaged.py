"""A nightly job: mark users who signed in during the last week as engaged.

The events are delivered before the process exits: the SDK flushes at exit (waiting at most
SHUTDOWN_TIMEOUT), so a command needs no flush() of its own.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.utils import timezone

from outlit_django import outlit


class Command(BaseCommand):
    help = "Mark users who signed in during the last N days (default 7) as engaged in Outlit."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=7)

    def handle(self, *args, **options):
        since = timezone.now() - timedelta(days=options["days"])
        users = get_user_model().objects.filter(last_login__gte=since)
        count = 0
        for user in users:
            outlit.user.engaged(
                user_id=str(user.pk), email=user.email, properties={"window_days": options["days"]}
            )
            count += 1
        self.stdout.write(f"Marked {count} user(s) engaged.")
