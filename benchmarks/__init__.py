"""Benchmarks of comfyui-gradio (not tests): ``python -m benchmarks [NAME ...]``. See README.md here."""
