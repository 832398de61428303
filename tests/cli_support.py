"""What the tests of the command line check of its errors: one line, the CLI's own."""

from __future__ import annotations


def one_line_error(capsys, *fragments) -> str:
    """The captured stderr must be exactly one line, ``train-export: error: ...``, holding every one
    of ``fragments``, and no traceback; returns it."""
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and err.startswith("train-export: error: "), err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err
