"""The Lava side, the only layer that imports Lava: each neuron kind's Lava process
(``neuron_processes.py``, with our process models in ``processes/``: AdLIF, the ring delay synapse,
the packed spike sink), the network builder and runner (``build.py``), datasets run as a backend
(``lava_backend.py``), three-way parity (``parity.py``), the Loihi 2 deploy path (``loihi2.py``, with
lava-loihi's side in ``lava_loihi.py`` and the AdLIF microcode in ``microcode.py``) and stopping
Lava's processes on any exit (``shutdown.py``)."""
