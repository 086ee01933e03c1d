from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo user (jane / outlit-demo, jane@acme.com) if it does not exist."

    def handle(self, *args, **options):
        User = get_user_model()
        if User.objects.filter(username="jane").exists():
            self.stdout.write("The demo user exists: jane / outlit-demo")
            return
        User.objects.create_user("jane", "jane@acme.com", "outlit-demo")
        self.stdout.write(self.style.SUCCESS("Created the demo user: jane / outlit-demo"))
