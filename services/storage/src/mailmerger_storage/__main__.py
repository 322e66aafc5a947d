"""`python -m mailmerger_storage`: serve the storage service alone (one container, one pod)."""

from mailmerger_storage.app import SERVICE
from mailmerger_shared.serving import main

main(SERVICE)
