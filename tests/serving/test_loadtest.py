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


def test_cpu_time_is_read_per_process_and_per_request():
    import os
    import time

    before = loadtest.cpu_seconds(os.getpid())
    started = time.process_time()
    while time.process_time() - started < 0.3:  # busy for 0.3 s of CPU
        sum(range(1000))
    after = loadtest.cpu_seconds(os.getpid())
    assert before is not None and after - before >= 0.25
    assert loadtest.cpu_per_request(before, before + 0.5, 100) == pytest.approx(5.0)
    assert loadtest.cpu_per_request(None, after, 100) is None
    assert loadtest.cpu_per_request(before, after, 0) is None
    assert loadtest.cpu_seconds(2 ** 22 + 12345) is None  # no such process


@pytest.mark.slow
def test_compare_runs_the_three_servers_and_prints_one_table(export_base, capsys):
    from support import MODEL_NAME

    code = loadtest.main(["--compare", "--export-base", str(export_base), "--model-name", MODEL_NAME,
                          "--clients", "4", "--duration", "1", "--workload", "decode1",
                          "--server-args", "--enable_model_warmup false"])  # three servers start sooner
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split("|")[1:-1] for line in out.splitlines() if line.startswith("| unbatched") or
            line.startswith("| batched")]
    assert [(row[0].strip(), row[1].strip()) for row in rows] == [
        ("unbatched", "gRPC"), ("unbatched", "REST"), ("batched", "gRPC"), ("batched", "REST"),
        ("batched, tensor_content", "gRPC"), ("batched, tensor_content", "REST")]
    for row in rows:
        assert float(row[2]) > 0 and row[6].strip() == "0"  # answered, no errors
        assert float(row[9]) > 0 and float(row[10]) >= 0  # CPU per request, server and client (clock ticks)
    assert all(row[8].strip() != "–" for row in rows[2:])  # the batched server formed batches
    assert "gRPC: batched / unbatched throughput" in out and "typed fields / tensor_content" in out
