from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from django.contrib.auth.signals import user_logged_out

        from portal import events

        def close_sockets(sender, request, user, **kwargs):
            if user is not None:
                events.session_ended(user.pk)

        user_logged_out.connect(close_sockets, dispatch_uid="portal-close-sockets")
