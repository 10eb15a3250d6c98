from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from portal import tokens
from portal.models import AccessToken

LAST_USED_RESOLUTION = timedelta(minutes=1)


class AccessTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer bpp_…`` personal access tokens; the token fixes the tenant."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(self.keyword + " "):
            return None
        parsed = tokens.parse(AccessToken.PREFIX, header[len(self.keyword) + 1 :])
        if parsed is None:
            return None  # another scheme's token: let the next authenticator try
        key_id, secret = parsed
        token = AccessToken.objects.select_related("user", "tenant").filter(key_id=key_id).first()
        if token is None or not tokens.matches(secret, token.secret_hash):
            raise exceptions.AuthenticationFailed(_("Invalid access token."))
        now = timezone.now()
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(_("This access token was revoked."))
        if token.expires_at <= now:
            raise exceptions.AuthenticationFailed(_("This access token has expired."))
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed(_("This user is disabled."))
        if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
            AccessToken.objects.filter(pk=token.pk).update(last_used_at=now)
        request._request.tenant = token.tenant
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword


class AccessTokenScheme(OpenApiAuthenticationExtension):
    target_class = "portal.api.authentication.AccessTokenAuthentication"
    name = "accessToken"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "Personal access token bpp_…"}
