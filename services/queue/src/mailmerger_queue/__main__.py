"""`python -m mailmerger_queue [dispatcher]`: serve the queue service's API, or run the dispatcher."""

from mailmerger_queue.app import NAME, create_app
from mailmerger_queue.settings import QueueSettings
from mailmerger_queue.worker import run_dispatcher
from mailmerger_shared.serving import main

main(NAME, QueueSettings, create_app, {"dispatcher": run_dispatcher})
