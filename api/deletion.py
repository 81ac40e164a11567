"""`DELETE /v1/sessions/{id}` (contract §4): cancel the session's jobs, end its open
streams, remove its data, and keep anything written afterwards from bringing it back.

Order matters. The tombstone comes first: from then on every append to the session is
refused (a worker's late `job.cancelled` included) and no new job can be created in it.
Then the data goes, the running jobs are told to stop, and the session's followers are
told it is gone (each ends its response with `session.deleted`). The tombstone outlives
any submission racing the delete (`TOMBSTONE_S`); after it, a late worker append is still
refused because its job is not in the (new) session's marks.
"""

from spool.api.state import AppState
from spool.shared.keys import TOMBSTONE_S, SessionRef
from spool.shared.streams import publish_deleted


async def delete_session(state: AppState, session: SessionRef) -> None:
    k, main, streams = state.keys, state.clients.main, state.clients.streams
    tomb = k.tombstone(session)
    await main.set(tomb, b"1", ex=TOMBSTONE_S)
    if streams is not main:
        await streams.set(tomb, b"1", ex=TOMBSTONE_S)
    live = await state.sessions.pending(session)
    job_ids = await state.store.job_ids(session)
    await state.store.delete_session(session, job_ids)
    await streams.delete(k.stream(session), k.marks(session))
    for job_id in live:
        await main.publish(k.cancel_channel, job_id)
    await state.limits.ended(session.tenant, *live)
    await publish_deleted(streams, k, session)
