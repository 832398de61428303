"""Train delay-learning AdLIF+ spiking networks, export them to NetX HDF5, run them on Lava.

The product's folders are mapped under this one import name (see pyproject.toml):

- ``snn_toolchain.train``       <- ``train/``        data pipelines, blocks, training loop
- ``snn_toolchain.export``      <- ``export/``       quantization and the .net (HDF5) writer/reader
- ``snn_toolchain.lava_models`` <- ``lava_models/``  Lava processes and the network builder

Shared definitions (constants, errors) live in this package itself.
"""

__version__ = "0.1.0"
