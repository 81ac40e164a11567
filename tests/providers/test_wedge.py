"""An unexpected exception in a job ends it `internal_error`, keeping its partial output,
and the session's next job runs (it used to stay `running` forever, wedging the session).
"""

import httpx
import pytest

from tests.fakes import anthropic_sse as a
from tests.fakes.server import FakeProvider, Reply
from tests.helpers import follow_job, submit

pytestmark = pytest.mark.process

MODEL = "anthropic:claude-sonnet-4-5"


async def test_a_job_that_breaks_unexpectedly_fails_and_the_session_moves_on(
    http: httpx.AsyncClient, fake: FakeProvider, session_id: str
) -> None:
    broken = Reply(  # the stream turns into something the SDK cannot parse, mid-answer
        sse=[
            a.message_start(10),
            *a.text_block(0, "Half", " an answer")[:3],
            "event: content_block_delta\ndata: {nope\n\n",
        ]
    )
    fine = Reply(
        sse=[a.message_start(10), *a.text_block(0, "Next."), *a.message_end("end_turn", 2)]
    )
    fake.reset(broken, fine)
    first = await submit(http, model=MODEL, session_id=session_id)
    second = await submit(http, model=MODEL, session_id=session_id)
    events = await follow_job(http, first)
    failed = events[-1]
    assert failed.event == "job.failed"
    assert failed.json["error"]["code"] == "internal_error"
    deltas = "".join(e.json["delta"] for e in events if e.event == "text.delta")
    assert failed.json["output_text"] == deltas == "Half an answer"
    job = (await http.get(f"/v1/jobs/{first['job_id']}")).json()
    assert (job["status"], job["error"]["code"]) == ("failed", "internal_error")
    assert (await follow_job(http, second))[-1].event == "job.completed"
    session = (await http.get(f"/v1/sessions/{session_id}")).json()
    assert session["busy"] is False


async def test_bad_provider_parameter_types_are_a_422_at_submit(http: httpx.AsyncClient) -> None:
    for parameters in ({"max_tokens": "abc"}, {"temperature": "hot"}, {"top_k": 1.5}):
        response = await http.post(
            "/v1/jobs", json={"input": "hi", "model": MODEL, "parameters": parameters}
        )
        assert response.status_code == 422, parameters
        assert response.json()["error"]["code"] == "invalid_field"
        assert next(iter(parameters)) in response.json()["error"]["message"]
