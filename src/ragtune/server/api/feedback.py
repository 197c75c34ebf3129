"""Feedback on an answer: thumbs up or down and a comment (kept for monitoring)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from ragtune.answer.feedback import Feedback
from ragtune.server.auth import Caller
from ragtune.server.schemas import FeedbackRequest, FeedbackResponse, error_responses

router = APIRouter(prefix="/api", tags=["feedback"])


@router.post("/feedback", response_model=FeedbackResponse, status_code=201,
             responses=error_responses(400, 401, 413, 422))
def feedback(body: FeedbackRequest, request: Request,
             who: Caller) -> FeedbackResponse:
    """Record the caller's vote on answer ``answer_id`` (the id of /api/ask, or
    ``ragtune.id`` of a chat completion). Votes are joined to answers by the monitor, which
    keeps only votes from the principal who asked."""
    request.app.state.ragtune.feedback.add(
        Feedback(body.answer_id, who.user, body.rating, body.comment))
    return FeedbackResponse(answer_id=body.answer_id, rating=body.rating, recorded=True)
