"""`python -m mailmerger_storage`: serve the storage service alone (one container, one pod)."""

from mailmerger_shared.serving import main
from mailmerger_storage.app import NAME, create_app
from mailmerger_storage.settings import StorageSettings

main(NAME, StorageSettings, create_app)
