"""`python -m mailmerger_queue`: serve the queue service alone (one container, one pod)."""

from mailmerger_queue.app import NAME, create_app
from mailmerger_queue.settings import QueueSettings
from mailmerger_shared.serving import main

main(NAME, QueueSettings, create_app)
