"""The CounselSim web app (Gradio 6 Blocks mounted on FastAPI). Entry point: ``app.build_app``.

Gradio reads ``GRADIO_ANALYTICS_ENABLED`` when it is imported, so it is switched off here, before
any module of this package imports gradio: transcripts are training data about real people's
practice and nothing about them leaves the machine.
"""

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("GRADIO_SSR_MODE", "False")
