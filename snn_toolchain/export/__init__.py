"""From a trained run to files and figures: the ``.net`` (NetX HDF5) writer and reader
(``netfile.py``, ``netfile_reader.py``, ``netfile_integrity.py``), the exporter, the batched
fixed-point emulator, NIR graphs out and in (``nir_export.py``, ``nir_import.py``, and their float
meaning, ``nir_simulate.py``), the activity and energy report, NeuroBench metrics, the Loihi 2
resource plan and the accuracy/operations frontier. Imports no Lava (that is lava_models/)."""
