"""The Gradio app: settings, the page, one tab per workflow, its endpoint, and each person's runs.

It builds on ``forms`` (tab specs) and ``comfy`` (the pool that runs them).
"""
