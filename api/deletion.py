"""`DELETE /v1/sessions/{id}` (contract §4): cancel the session's jobs, end its open
streams, remove its data, and keep anything written afterwards from bringing it back.

Order matters. The tombstone comes first, set in one step with the deletion of the
session's stream and marks (the append script skips the tombstone lookup for a job with a
queued mark, so no marks may outlive the tombstone's start): from then on every append to
the session is refused (a worker's late `job.cancelled` included) and no new job can be
created in it. Then the rest of the data goes, the running jobs are told to stop, and the
session's followers are told it is gone (each ends its response with `session.deleted`).
The tombstone outlives any submission racing the delete (`TOMBSTONE_S`); after it, a late
worker append is still refused because its job is not in the (new) session's marks.
"""

from spool.api.state import AppState
from spool.shared.keys import TOMBSTONE_S, SessionRef
from spool.shared.streams import delete_stream_data, publish_deleted


async def delete_session(state: AppState, session: SessionRef) -> None:
    k, main, streams = state.keys, state.clients.main, state.clients.streams
    tomb = k.tombstone(session)
    if streams is not main:
        await main.set(tomb, b"1", ex=TOMBSTONE_S)
    # the tombstone with the stream and marks, atomically (the append script counts on it)
    await delete_stream_data(streams, k, session, TOMBSTONE_S)
    live = await state.sessions.pending(session)
    job_ids = await state.store.job_ids(session)
    await state.store.delete_session(session, job_ids)
    for job_id in live:
        await main.publish(k.cancel_channel, job_id)
    await state.limits.ended(session.tenant, *live)
    await publish_deleted(streams, k, session)
