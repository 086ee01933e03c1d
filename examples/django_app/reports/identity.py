"""Who a request is, for Outlit: the signed-in user, and the company they belong to.

Named in settings.OUTLIT["IDENTIFY_USER"]. This app has no organisation model, so the company is
the domain of the user's email; a multi-tenant app would return its tenant's id instead, e.g.
``"customer_id": str(request.organization.pk)``.
"""

from outlit_django import default_identity


def identity(request):
    found = default_identity(request)  # {"user_id": "<pk>", "email": "..."} when signed in
    email = found.get("email", "")
    if "@" in email:
        found["customer_domain"] = email.rsplit("@", 1)[1].lower()
    return found
