from django.http import HttpResponse
from django.views.decorators.http import require_GET

from agents.wheel import build_agent_wheel, wheel_filename


@require_GET
def agent_wheel(request, filename=None):
    """The agent package, public: it holds no secrets, and machines install it with pip."""
    response = HttpResponse(build_agent_wheel(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{wheel_filename()}"'
    return response
