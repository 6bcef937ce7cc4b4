"""The Gradio app: settings, the page, one tab per workflow, its endpoint, and each person's runs.

It builds on ``forms`` (tab specs) and ``comfy`` (the pool that runs them). Modules:

- ``app``: start-up (settings, catalogue, tabs) and ``launch``; ``config``: the settings.
- ``page``: the page (servers panel, one tab per workflow, broken and empty tabs), laid out then wired.
- ``tab``: one workflow's tab (``TabView.render`` then ``listen``), submitting its runs.
- ``endpoint``: a tab's endpoint as one ordered list of named fields (page inputs, API, MCP docstring).
- ``stream``: a run's job events as Gradio updates; ``widgets``: form components and status lines.
- ``history``: "Your recent runs"; ``runs``: each person's run records on disk; ``shared``: what the
  tabs of one app share (who is calling, what is running).
- ``apidocs``: the API examples in the README, generated from the same fields.
"""
