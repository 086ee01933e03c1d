"""ASGI entry point: ``uvicorn exampleproject.asgi:application``.

OutlitLifespan answers the ASGI lifespan protocol (Django does not) and flushes Outlit at server
shutdown: uvicorn ends the process with the signal that stopped it, so exit handlers never run.
"""

import os

from django.core.asgi import get_asgi_application

from outlit_django.asgi import OutlitLifespan

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exampleproject.settings")

application = OutlitLifespan(get_asgi_application())
