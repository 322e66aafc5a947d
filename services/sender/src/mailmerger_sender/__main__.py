"""`python -m mailmerger_sender worker`: deliver (probes and metrics on ``MM_METRICS_PORT``)."""

from mailmerger_sender.app import SERVICE
from mailmerger_shared.serving import main

main(SERVICE)
