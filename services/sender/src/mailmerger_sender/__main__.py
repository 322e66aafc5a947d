"""`python -m mailmerger_sender [worker]`: serve the sender's probes and metrics, or deliver."""

from mailmerger_sender.app import NAME, create_app
from mailmerger_sender.settings import SenderSettings
from mailmerger_sender.worker import run_sender
from mailmerger_shared.serving import main

main(NAME, SenderSettings, create_app, {"worker": run_sender})
