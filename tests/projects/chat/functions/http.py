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
