"""Training settings and the paper's presets (train/loop/config.py): the two presets and the batch
chosen from the data, the learning-rate groups and the SHD / SSC presets, and refused settings.
"""

from __future__ import annotations

from cli_support import one_line_error, train_args as _train_args
from snn_toolchain.cli import build_parser, config_from_args, main as cli_main
from snn_toolchain.train.loop.config import preset_config
from snn_toolchain.train.model.delay_snn import DelaySNN


def test_two_learning_rates_and_presets():
    model = DelaySNN(10, 3, 8)
    groups = model.parameter_groups(0.01, 0.1)
    assert [g["lr"] for g in groups] == [0.01, 0.1] and len(groups[1]["params"]) == 3
    assert len(DelaySNN(10, 3, 8, delays=False).parameter_groups(0.01, 0.1)) == 1
    shd, ssc = preset_config("shd"), preset_config("ssc", epochs=3)
    assert (shd.hidden, shd.epochs, shd.batch_size, shd.dropout, shd.lr_weights, shd.lr_delays) == \
           (128, 100, 128, 0.5, 0.01, 0.1)
    assert (ssc.hidden, ssc.epochs, ssc.batch_size, ssc.dropout, ssc.lr_weights, ssc.lr_delays) == \
           (512, 3, 32, 0.25, 0.001, 0.01)


def test_two_presets_and_the_batch_from_the_data(tmp_path):
    """--preset paper is the paper's Table 3 exactly (the default with --data-dir); --preset tuned adds
    the measured improvements (the default on the embedded set), among them the batch rule: the
    paper's batch halved until an epoch has 32 updates, 128 at the real SHD's size, 32 on the
    embedded set's, whichever folder the data came from."""
    from snn_toolchain.train.loop.config import TUNED_PRESET, resolve_batch

    parser = build_parser()
    embedded = config_from_args(parser.parse_args(["train", "--dataset", "shd"]))
    real = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--data-dir", str(tmp_path)]))
    tuned_real = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--data-dir", str(tmp_path),
                                                     "--preset", "tuned"]))
    paper_embedded = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--preset", "paper"]))
    assert (embedded.preset, real.preset, tuned_real.preset, paper_embedded.preset) == ("tuned", "paper", "tuned", "paper")
    assert real == paper_embedded and embedded == tuned_real
    assert (real.batch_size, real.min_updates, real.augment) == (128, 0, "")
    assert all(getattr(embedded, key) == value for key, value in TUNED_PRESET.items())
    # the batch from the data
    assert resolve_batch(embedded, 1120)[0].batch_size == 32          # the embedded set: 35 updates
    assert resolve_batch(embedded, 7340)[0].batch_size == 128         # SHD after the hold-out: 58
    # one count of updates, the training loader's (it keeps the last, partial batch), checked and printed
    from snn_toolchain.train.data.loading import make_loader

    for samples in (1120, 1000, 7340, 795):
        batched, why = resolve_batch(embedded, samples)
        loader_updates = len(make_loader(list(range(samples)), batched.batch_size))
        assert f"batch {batched.batch_size}: {loader_updates} updates an epoch of {samples} samples" in why
    assert resolve_batch(embedded, 1000)[0].batch_size == 32          # 31 full batches and a partial one
    assert resolve_batch(embedded, 795)[0].batch_size == 16
    assert resolve_batch(embedded, 60)[0].batch_size == 8 and "the smallest batch" in resolve_batch(embedded, 60)[1]
    assert resolve_batch(real, 1120)[0].batch_size == 128              # the paper's preset: as given
    # ... and says when that is few updates, with the batch the tuned preset's rule would give
    assert resolve_batch(real, 795)[1] == ("batch 128: 7 updates an epoch of 795 samples; the paper preset's, as "
                                           "given (--batch-size); few updates for a set this small: --preset "
                                           "tuned (or --min-updates 32) would train at batch 16")
    assert "few updates" not in resolve_batch(real, 7340)[1]             # the real SHD: 58 updates
    assert "few updates" not in resolve_batch(preset_config("ssc"), 75466)[1]
    chosen = config_from_args(parser.parse_args(["train", "--dataset", "shd", "--batch-size", "64"]))
    assert resolve_batch(chosen, 1120)[0].batch_size == 32 and chosen.min_updates == 32
    assert preset_config("ssc", embedded=True) == preset_config("ssc")   # no embedded SSC: the paper's


def test_epochs_zero_is_refused(tiny_folder, tmp_path, capsys):
    assert cli_main(_train_args(tiny_folder, tmp_path / "run", 0)) == 2
    one_line_error(capsys, "--epochs 0: must be at least 1")
    assert not (tmp_path / "run" / "result.json").exists()
