"""`python -m mailmerger_storage`: serve the storage service alone (one container, one pod)."""

from mailmerger_shared.serving import main
from mailmerger_storage.app import SERVICE

main(SERVICE)
