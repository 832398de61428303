import sys
from pathlib import Path

# Makes the test helpers in this folder (official_layout.py) importable from every test module.
sys.path.insert(0, str(Path(__file__).resolve().parent))
