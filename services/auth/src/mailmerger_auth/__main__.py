"""`python -m mailmerger_auth`: serve the auth service alone (one container, one pod)."""

from mailmerger_auth.app import SERVICE
from mailmerger_shared.serving import main

main(SERVICE)
