"""The datasets: the registry that names them (``registry.py``), the readers of the official
layouts (``heidelberg.py`` for SHD / SSC, ``gsc.py`` for Google Speech Commands), the splits and
their fingerprint (``splits.py``), the one entry point that builds loaders (``loading.py``), the
training-time augmentation (``augment.py``), a non-temporal baseline (``baseline.py``) and the
embedded spoken-digit set (``embedded_data/``)."""
