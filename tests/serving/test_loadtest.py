"""The load test's command line: flags that do not apply are refused before anything starts."""

import pytest

from serving import loadtest


@pytest.mark.parametrize("argv, message", [
    (["--clients", "65"], "--clients must be 1–64"),
    (["--compare"], "--compare needs --export-base"),
    (["--compare", "--export-base", "e", "--rest"], "--rest does not apply with --compare"),
    (["--export-base", "e"], "--export-base applies only with --compare"),
    (["--rest", "--mixed", "8501"], "exclude each other"),
    (["--target", "192.0.2.1:8500", "--duration", "1"], "not a loopback address"),
])
def test_flags_that_do_not_apply_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as stopped:
        loadtest.main(argv)
    assert stopped.value.code != 0
    captured = capsys.readouterr()
    assert message in captured.err + str(stopped.value.code)


def test_a_missing_export_is_refused(tmp_path, capsys):
    assert loadtest.main(["--compare", "--export-base", str(tmp_path)]) == 2
    assert "no model folder" in capsys.readouterr().err
