import csv
import io

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from . import background

PLANS = ("starter", "pro", "enterprise")


def home(request):
    return render(request, "reports/home.html", {"plans": PLANS})


async def signed_in_user(request):
    """request.user, loaded without blocking the event loop: request.auser() on Django 5.0 and
    later; on Django 4.2, which lacks it, the lazy request.user evaluated in a thread (it may
    query the database, which Django refuses to do inside the event loop)."""
    if hasattr(request, "auser"):
        return await request.auser()
    return await sync_to_async(_load_user)(request)


def _load_user(request):
    user = request.user
    _ = user.is_authenticated  # evaluates the lazy object: its queries run here
    return user


async def export_report(request):
    """An async view: exports a CSV and records who exported what."""
    user = await signed_in_user(request)
    if not user.is_authenticated:
        return redirect("login")
    report_format = request.GET.get("format", "csv")
    rows = int(request.GET.get("rows", "10"))
    # No identity given: request.outlit fills in the user's user_id, email and company.
    request.outlit.track(
        event_name="report_exported", properties={"format": report_format, "rows": rows}
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["day", "signups"])
    writer.writerows([day, 10 + day % 7] for day in range(1, rows + 1))
    response = HttpResponse(buffer.getvalue(), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="report.csv"'
    return response


@login_required
@require_http_methods(["GET", "POST"])
def upgrade_subscription(request):
    if request.method == "GET":
        return render(request, "reports/upgrade.html", {"plans": PLANS})
    from_plan = request.POST.get("from_plan", "starter")
    to_plan = request.POST.get("to_plan", "pro")
    # A real app would call its billing provider here.
    request.outlit.track(
        event_name="subscription_upgraded",
        properties={"fromPlan": from_plan, "toPlan": to_plan},
    )
    # Billing calls take the customer fields of the request's identity (customer_domain here).
    request.outlit.customer.paid(properties={"plan": to_plan})
    background.start_usage_snapshot(request.user.pk, to_plan)
    messages.success(request, f"Upgraded to {to_plan}.")
    return redirect("home")
