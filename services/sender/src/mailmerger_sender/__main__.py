"""`python -m mailmerger_sender`: serve the sender service alone (one container, one pod)."""

from mailmerger_sender.app import NAME, create_app
from mailmerger_sender.settings import SenderSettings
from mailmerger_shared.serving import main

main(NAME, SenderSettings, create_app)
