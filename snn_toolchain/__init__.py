"""Train delay-learning AdLIF+ spiking networks, export them to NetX HDF5, run them on Lava.

The folder is the import path: the layers live in this package's folders, and the product card's
top-level folders are links to them (``train -> snn_toolchain/train`` and so on):

- ``snn_toolchain.train``       = ``train/``        data, the model, the training loop, sweeps
- ``snn_toolchain.export``      = ``export/``       the .net files, the emulator, NIR, reports, plans
- ``snn_toolchain.lava_models`` = ``lava_models/``  Lava processes, the network builder, parity

This package itself is the core every layer uses: the neuron models (``neurons/``), the constants,
the fixed-point rules, the deployable network description, errors and atomic writes; and at the top,
the CLI (``cli/``) and the flat public API (``api.py``). docs/architecture.md draws the layers.
"""

__version__ = "0.1.0"
