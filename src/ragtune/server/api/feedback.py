"""Feedback on an answer: thumbs up or down and a comment, stored with the answer's record
(``Store.add_feedback``, the same feedback ``ragtune monitor feedback`` gives and the
monitor reads)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ragtune.server.auth import Caller
from ragtune.server.schemas import FeedbackRequest, FeedbackResponse, error_responses

router = APIRouter(prefix="/api", tags=["feedback"])
RATING = {"up": 1, "down": -1}


@router.post("/feedback", response_model=FeedbackResponse, status_code=201,
             responses=error_responses(400, 401, 404, 413, 422))
def feedback(body: FeedbackRequest, request: Request,
             who: Caller) -> FeedbackResponse:
    """Record the caller's vote on answer ``answer_id`` (the id of /api/ask, or
    ``ragtune.id`` of a chat completion). Only the principal who asked (or an admin) may
    rate an answer; any other id is 404, as if it did not exist."""
    request.app.state.ragtune.ws.store.add_feedback(
        body.answer_id, who.principal, RATING[body.rating], body.comment)
    return FeedbackResponse(answer_id=body.answer_id, rating=body.rating, recorded=True)
