import zoneinfo

from django.utils import timezone, translation
from django.utils.functional import SimpleLazyObject
from django.utils.http import http_date

from portal.tenancy import current_tenant


class UserPreferencesMiddleware:
    """Show a signed-in user's pages in their language and time zone."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        prefs = None
        if request.user.is_authenticated:
            prefs = getattr(request.user, "preferences", None)
        if prefs is not None:
            translation.activate(prefs.language)
            request.LANGUAGE_CODE = prefs.language
            timezone.activate(zoneinfo.ZoneInfo(prefs.time_zone))
        else:
            timezone.deactivate()
        return self.get_response(request)


class CurrentTenantMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.tenant = SimpleLazyObject(lambda: current_tenant(request))
        return self.get_response(request)


class DateHeaderMiddleware:
    """Every answer carries ``Date``: agents measure their clock skew against it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not response.has_header("Date"):
            response["Date"] = http_date()
        return response
