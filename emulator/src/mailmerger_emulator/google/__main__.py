"""`python -m mailmerger_emulator.google`: serve the Google emulator alone."""

from mailmerger_emulator.google.app import serve
from mailmerger_emulator.google.settings import GoogleEmulatorSettings
from mailmerger_shared.settings import load

serve(load(GoogleEmulatorSettings))
