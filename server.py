"""The ASGI entry point: `uvicorn server:app` serves the project in the working directory.

Database from REACTIVE_DATABASE_URL (default embedded SQLite in .reactive/data.db).
"""

from reactive.http import create_app

app = create_app()
