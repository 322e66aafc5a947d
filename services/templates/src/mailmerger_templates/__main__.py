"""`python -m mailmerger_templates`: serve the templates service alone (one container, one pod)."""

from mailmerger_shared.serving import main
from mailmerger_templates.app import SERVICE

main(SERVICE)
