"""Everything that talks to a ComfyUI server: the HTTP and WebSocket seam, the wire vocabulary,
jobs that follow a prompt to its end, collecting their outputs, and a pool of servers.

It builds on ``forms`` (a tab spec and a prepared prompt) and never imports Gradio.
"""
