"""``python -m bench`` (with the repository's ``dev/`` on ``PYTHONPATH``); ``python -m bench compile``: the
torch.compile benchmark (``bench/compile.py``)."""
import sys

if sys.argv[1:2] == ["compile"]:
    from .compile import main as compile_main

    sys.exit(compile_main(sys.argv[2:]))

from .cli import main  # noqa: E402

sys.exit(main())
