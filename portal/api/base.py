from rest_framework import viewsets

from portal.access import Action, scoped

WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


class ScopedViewSetMixin:
    """Every API queryset goes through the tenant scoping: outside it is a 404.

    Writes need the view's ``write_action`` on the object; creation checks it on the
    parent in the service function.
    """

    queryset = None
    write_action = Action.WRITE

    @property
    def tenant(self):
        return self.request.tenant

    def scoped(self, queryset, action=Action.READ):
        return scoped(queryset, self.request.user, self.tenant, action)

    def get_queryset(self):
        return self.scoped(self.queryset.all())


class ScopedReadOnlyViewSet(ScopedViewSetMixin, viewsets.ReadOnlyModelViewSet):
    pass
