"""`python -m mailmerger_auth`: serve the auth service alone (one container, one pod)."""

from mailmerger_auth.app import NAME, create_app
from mailmerger_auth.settings import AuthSettings
from mailmerger_shared.serving import main

main(NAME, AuthSettings, create_app)
