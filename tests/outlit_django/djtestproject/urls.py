from django.urls import path

from . import views

urlpatterns = [
    path("call/", views.call),
    path("acall/", views.acall),
    path("identity/", views.identity),
    path("aidentity/", views.aidentity),
    path("process-wide/", views.process_wide),
    path("login/", views.login_view),
    path("alogin/", views.alogin_view),
    path("quiet/", views.quiet),
    path("aquiet/", views.aquiet),
    path("awhoami/", views.whoami),
    path("stream/", views.stream),
]
