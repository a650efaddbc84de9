"""``python -m bench`` (with the repository's ``dev/`` on ``PYTHONPATH``)."""
import sys

from .cli import main

sys.exit(main())
