"""Fetching the public datasets: ``download.py`` (what to fetch and where, resumable),
``verified_transfer.py`` (streaming with checksums, atomic replacement) and ``archives.py``
(safe extraction). Only the standard library and tqdm."""
