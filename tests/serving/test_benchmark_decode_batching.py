"""The in-process batching benchmark: the decode alone, per batch size and calling threads."""

import re

import pytest

from serving.benchmarks import decode_batching


@pytest.mark.slow  # the exported model of the serving tests
def test_the_decode_alone_is_measured_per_batch_size_and_thread_count(export_base, capsys):
    from support import MODEL_NAME

    code = decode_batching.main(["--export-base", str(export_base), "--model-name", MODEL_NAME,
                                "--rows", "1", "3", "--threads", "1", "2", "--seconds", "0.3"])
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in out.splitlines() if re.match(r"\| \d", line)]
    assert [(int(row[0]), int(row[1])) for row in rows] == [(1, 1), (1, 2), (3, 1), (3, 2)]
    for sentences, threads, per_second, ms_per_run, cores, cpu_ms in (map(float, row) for row in rows):
        assert per_second > 0 and ms_per_run > 0 and cores > 0 and cpu_ms > 0
        # each thread completes one run of `sentences` every `ms_per_run`
        assert per_second == pytest.approx(threads * sentences * 1000 / ms_per_run, rel=2e-2)  # ms printed to 0.01
    assert "3 rows per run against 1:" in out


def test_a_missing_export_and_bad_settings_are_refused(tmp_path, capsys):
    assert decode_batching.main(["--export-base", str(tmp_path)]) == 2
    assert "no version under" in capsys.readouterr().err
    for flags in (["--rows", "0"], ["--threads", "0"], ["--seconds", "0"]):
        with pytest.raises(SystemExit) as stopped:
            decode_batching.main(["--export-base", str(tmp_path), *flags])
        assert stopped.value.code == 2
