"""``python -m snn_toolchain.cli``: the same as ``train-export`` (torchrun starts training this way)."""

import sys

from snn_toolchain.cli import main

sys.exit(main())
