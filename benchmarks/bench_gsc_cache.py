"""GSC's first epoch against a cached one: log-mel feature extraction against reading the cache.

The first run of a GSC folder computes 40 log-mel features per 10 ms for every clip
(torchaudio's Kaldi fbank) and writes one cache file per split; every later run (and every epoch:
features are held in memory) reads the cache. This script writes a GSC v0.02 tree in the official
layout (``--clips-per-word`` 16 kHz clips per word, the three split lists), then loads it twice in
one run, with an empty cache and with the cache it just wrote, and prints both times, the ratio,
and clips per second, with an extrapolation to the real set's 105,829 clips.

    python benchmarks/bench_gsc_cache.py [--clips-per-word 30] [--folder DIR] [--json FILE]
"""


import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from official_layout import write_gsc_folder  # noqa: E402  (the tests' writer of the official layout)
from snn_toolchain.train.data import gsc  # noqa: E402
from snn_toolchain.train.data.loading import build_datasets  # noqa: E402

GSC_V2_CLIPS = 105_829      # clips in speech_commands_v0.02 (Warden 2018), all splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips-per-word", type=int, default=30)
    parser.add_argument("--folder", type=Path, default=None, help="where to write the tree (default: a temp folder)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    root = (args.folder or Path(tempfile.mkdtemp())) / "speech_commands_v0.02"
    write_gsc_folder(root, gsc.GSC_WORDS, clips_per_word=args.clips_per_word)
    clips = len(gsc.GSC_WORDS) * args.clips_per_word
    cache = root.parent / "cache"

    t0 = time.perf_counter()
    first = build_datasets("gsc", root, pad_steps=25, cache_dir=cache)
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = build_datasets("gsc", root, pad_steps=25, cache_dir=cache)
    cached_s = time.perf_counter() - t0
    assert len(first.train) == len(cached.train)

    print(f"GSC tree of {clips} clips ({first.summary()})")
    print(f"first load (feature extraction + encoding + cache write): {first_s:.2f} s, {clips / first_s:.0f} clips/s")
    print(f"cached load (cache read + encoding): {cached_s:.2f} s, {clips / cached_s:.0f} clips/s")
    print(f"ratio first / cached: {first_s / cached_s:.1f}x")
    print(f"extrapolated to the real {GSC_V2_CLIPS:,} clips: first {GSC_V2_CLIPS / clips * first_s / 60:.1f} min, "
          f"cached {GSC_V2_CLIPS / clips * cached_s:.0f} s (once per run; epochs read memory)")
    if args.json:
        args.json.write_text(json.dumps({"clips": clips, "first_s": first_s, "cached_s": cached_s,
                                         "ratio": first_s / cached_s}, indent=2))


if __name__ == "__main__":
    main()
