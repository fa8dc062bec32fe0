"""``python -m fencelock``: the same CLI as the ``fencelock`` console script."""

from .cli import main

raise SystemExit(main())
