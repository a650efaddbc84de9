"""``python -m bench`` (with the repository's ``dev/`` on ``PYTHONPATH``); ``python -m bench compile``: the
torch.compile benchmark (``bench/compile.py``); ``python -m bench gguf``: GGUF beside full precision
(``bench/gguf.py``)."""
import sys

if sys.argv[1:2] == ["compile"]:
    from .compile import main as compile_main

    sys.exit(compile_main(sys.argv[2:]))
if sys.argv[1:2] == ["gguf"]:
    from .gguf import main as gguf_main

    sys.exit(gguf_main(sys.argv[2:]))

from .cli import main  # noqa: E402

sys.exit(main())
