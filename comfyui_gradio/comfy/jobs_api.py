"""What a server offers, and a newer server's ``/api/jobs`` read into the shapes a job already uses.

ComfyUI 0.3.64 has no ``/api/jobs`` (``GET /api/jobs`` answers 404); newer servers (0.36+,
``server.py`` with ``comfy_execution/jobs.py``) answer:

* ``GET /api/jobs/{id}``: one job dict, 404 ``{"error": "Job not found"}`` for an unknown id. ``status``
  is ``pending``, ``in_progress``, ``completed``, ``failed`` or ``cancelled``; a finished job also has
  ``outputs`` (the history outputs, ``normalize_outputs``) and ``execution_status`` (the history
  entry's ``status``: ``status_str``, ``completed``, ``messages``).
* ``GET /api/jobs?status=in_progress,pending``: ``{"jobs": [...], "pagination": {"offset", "limit",
  "total", "has_more"}}``; a queued job's ``priority`` is its queue number.
* ``POST /api/jobs/{id}/cancel`` and ``POST /api/jobs/cancel {"job_ids": [...]}``: ``{"cancelled":
  bool}``; a pending job is dequeued, a running one interrupted, others left alone.

So ``ComfyClient.history`` and ``queue_state`` keep their 0.3.64 shapes whichever path serves them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["FINISHED", "ServerFeatures", "history_entry", "queue_state"]

FINISHED = ("completed", "failed", "cancelled")  # comfy_execution/jobs.py JobStatus, from the history


@dataclass(frozen=True)
class ServerFeatures:
    """What one server says it offers: ``/system_stats`` ``comfyui_version`` ("" if unknown), its
    feature flags (``GET /features``, {} on a server without it) and whether ``/api/jobs`` answers."""

    version: str = ""
    flags: dict[str, Any] = field(default_factory=dict)
    jobs_api: bool = False

    @property
    def text_prompt_ids(self) -> bool:
        """Whether the server frames ``progress_text`` with its prompt id (for a client that asks)."""
        return self.flags.get("supports_progress_text_metadata") is True


def history_entry(job: dict[str, Any]) -> dict[str, Any] | None:
    """The ``/history/{id}`` entry equivalent to a ``GET /api/jobs/{id}`` job; None until it finished."""
    status = job.get("status")
    if status not in FINISHED:
        return None
    execution = job.get("execution_status") or {}
    if not execution:  # a history entry without status is reported "completed" (normalize_history_item)
        execution = {"status_str": "success", "completed": True, "messages": []} if status == "completed" else {
            "status_str": "error", "completed": False, "messages": []}
    return {"outputs": job.get("outputs") or {}, "status": execution}


def queue_state(jobs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """``GET /queue``'s shape (items ``[number, prompt_id]``) from the jobs of ``GET /api/jobs``."""
    def items(status: str) -> list[list[Any]]:
        return [[job.get("priority", 0), job.get("id")] for job in jobs if job.get("status") == status]

    return {"queue_running": items("in_progress"), "queue_pending": items("pending")}
