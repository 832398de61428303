"""The neuron models, one home: the interface every kind implements (``interface.py``), the
registry that names them (``registry.py``), the shared fixed-point step and its constants
(``dynamics.py``), and the two kinds: AdLIF / AdLIF+ (``adlif.py``) and CUBA LIF (``cuba.py``).

The float model (``train/model/blocks.py``), the emulator (``export/emulator.py``) and the Lava
models (``lava_models/``) all take a neuron's equations and limits from here.
"""
