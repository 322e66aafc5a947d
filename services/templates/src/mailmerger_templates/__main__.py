"""`python -m mailmerger_templates`: serve the templates service alone (one container, one pod)."""

from mailmerger_shared.serving import main
from mailmerger_templates.app import NAME, create_app
from mailmerger_templates.settings import TemplatesSettings

main(NAME, TemplatesSettings, create_app)
