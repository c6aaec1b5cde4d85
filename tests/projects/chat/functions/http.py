from starlette.responses import JSONResponse

from reactive import HttpRouter, http_action

http = HttpRouter()


@http_action
async def echo(ctx, request):
    body = await request.json()
    count = await ctx.run_mutation(
        "messages:send_internal", {"channel": "hooks", "body": body["text"]}
    )
    return JSONResponse({"id": count})


http.route(path="/hooks/echo", method="POST", handler=echo)


@http_action
async def size(ctx, request):
    """How many bytes of body the action was handed."""
    return JSONResponse({"bytes": len(await request.body())})


@http_action
async def parse(ctx, request):
    """The body parsed as JSON, or why it could not be."""
    try:
        return JSONResponse({"type": type(await request.json()).__name__})
    except ValueError as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)


http.route(path="/hooks/size", method="POST", handler=size)
http.route(path="/hooks/small", method="POST", handler=size, max_body_bytes=1024)
http.route(path="/hooks/parse", method="POST", handler=parse)
