"""GET /bench/stats: the execution counters of this server process (see counters.py)."""

from functions.counters import RUNS
from starlette.responses import JSONResponse

from reactive import HttpRouter, http_action

http = HttpRouter()


@http_action
async def stats(ctx, request):
    return JSONResponse(dict(RUNS))


http.route(path="/bench/stats", method="GET", handler=stats)
