"""Where the tests find what they read: everything lies inside the repository.

``RECORDED`` holds what a real ComfyUI 0.3.64 (commit a125cd84) said on the wire: PROTOCOL.md,
the transcripts and their binary frames, its ``/object_info`` and its model-free node list
(README.md there says how they were recorded).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
DATA = ROOT / "tests" / "data"
RECORDED = DATA / "comfyui-0.3.64"
TRANSCRIPTS = RECORDED / "transcripts"
OBJECT_INFO = RECORDED / "object_info.json"
UI_WORKFLOWS = DATA / "ui_workflows"
