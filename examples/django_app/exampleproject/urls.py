from django.contrib.auth import views as auth_views
from django.urls import path
from reports import views

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("reports/export/", views.export_report, name="export_report"),
    path("billing/upgrade/", views.upgrade_subscription, name="upgrade_subscription"),
]
