"""The seed app's cron jobs (UTC): each run is a row of `_scheduled_functions`, so its history
and failures show in `reactive logs` and to `ctx.db.system.query("_scheduled_functions")`."""

from __future__ import annotations

from reactive import CronJobs, internal

crons = CronJobs()
# Uploads the browser never saved (closed the tab between upload and save) would keep their
# bytes forever: once a day, delete those a day old.
crons.daily(
    "delete unsaved uploads", {"hourUTC": 4, "minuteUTC": 0}, internal.files.deleteUnsavedUploads
)
