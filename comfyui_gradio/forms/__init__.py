"""The pure layer: workflow files and schemas -> a tab spec -> a prepared prompt.

Nothing here talks to a server or imports Gradio; the caller brings the server's node catalogue.
``loader`` is the one place a tab spec is built (file -> conversion -> schema, markers or an inferred
form -> checks -> limits); ``prepare`` applies a caller's values to a copy of its workflow.
"""
