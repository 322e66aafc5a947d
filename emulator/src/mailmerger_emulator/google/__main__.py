"""`python -m mailmerger_emulator.google`: serve the Google emulator alone on its public URL's port."""

from mailmerger_emulator.google.app import create_app
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.serving import serve_standalone
from mailmerger_shared.settings import load

settings = load(GoogleEmulatorSettings)
serve_standalone(create_app(settings), settings.public_url)
