from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET

from agents.wheel import build_agent_wheel, wheel_filename


@require_GET
def latest_agent_wheel(request):
    """A stable address for the newest agent; pip needs the versioned file name."""
    return redirect("agent-wheel-file", filename=wheel_filename())


@require_GET
def agent_wheel(request, filename):
    """The agent package, public: it holds no secrets, and machines install it with pip."""
    if filename != wheel_filename():
        raise Http404("No such agent version.")
    response = HttpResponse(build_agent_wheel(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
