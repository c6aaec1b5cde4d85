"""A live chat channel from Python: subscribe to `messages:list`, send messages, print updates.

Start a server for the chat test project, then run this against its URL:

    REACTIVE_PROJECT=tests/projects/chat uvicorn --factory reactive.http:create_app --port 3210
    python examples/python_client.py http://127.0.0.1:3210 [channel] [message ...]

Each message given on the command line is sent as a mutation (default: three greetings);
every new result of the subscribed query is printed as it arrives.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any, cast

from reactive.client import Client, ClientError, connect

__all__ = ["main"]


async def print_updates(client: Client, channel: str, wanted: int) -> None:
    """Print the channel's latest messages each time they change, until `wanted` are there."""
    async for result in client.subscribe("messages:list", {"channel": channel}):
        messages = cast(list[dict[str, Any]], result)  # what messages:list returns
        bodies = [message["body"] for message in reversed(messages)]
        print(f"[{channel}] {len(bodies)} message(s): {bodies}")
        if len(bodies) >= wanted:
            return


async def chat(url: str, channel: str, messages: list[str]) -> None:
    async with connect(url) as client:
        already = len(cast(list[Any], await client.query("messages:list", {"channel": channel})))
        wanted = min(10, already + len(messages))  # the query returns the latest 10
        watcher = asyncio.create_task(print_updates(client, channel, wanted))
        for body in messages:
            message_id = await client.mutation("messages:send", {"channel": channel, "body": body})
            print(f"sent {body!r} as {message_id!r}")
            await asyncio.sleep(0.2)
        try:
            await client.mutation("messages:send", {"channel": channel, "body": "   "})
        except ClientError as error:
            print(f"an empty message is refused, as expected: {error.data!r}")
        await asyncio.wait_for(watcher, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="deployment URL, e.g. http://127.0.0.1:3210")
    parser.add_argument("channel", nargs="?", default="general")
    parser.add_argument("messages", nargs="*", default=["hello", "from", "python"])
    args = parser.parse_args()
    asyncio.run(chat(args.url, args.channel, args.messages))


if __name__ == "__main__":
    main()
