"""`python -m mailmerger_queue [dispatcher]`: serve the queue service's API, or run the dispatcher."""

from mailmerger_queue.app import SERVICE
from mailmerger_shared.serving import main

main(SERVICE)
