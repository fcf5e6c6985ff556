"""The CounselSim web app (Gradio 6 Blocks mounted on FastAPI). Entry point: ``app.build_app``.

Transcripts are training data about real people's practice and nothing about them leaves the
machine: the Blocks are built with ``analytics_enabled=False`` and server-side rendering off
(``app.py``), explicitly rather than through environment variables changed on import.
"""
