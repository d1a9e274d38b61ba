"""The stock server's TensorFlow thread flags, read as it reads them."""

import pytest

from serving import server
from serving.model_manager import SessionThreads


@pytest.mark.parametrize("session, intra, inter, expected", [
    (0, 0, 0, SessionThreads(0, 0)),      # TensorFlow's choice
    (3, 0, 0, SessionThreads(3, 3)),      # one flag for both pools
    (3, 1, 0, SessionThreads(1, 0)),      # a positive pool flag wins over the session flag
    (0, 1, -1, SessionThreads(1, -1)),    # every op in the calling thread
    (2, 0, -1, SessionThreads(2, 2)),     # a negative inter alone is not "given": the session flag rules
])
def test_thread_flags_resolve_as_the_stock_server_resolves_them(session, intra, inter, expected):
    assert SessionThreads.from_flags(session, intra, inter) == expected


def test_all_three_thread_flags_are_refused_before_anything_listens(tmp_path, capsys):
    argv = ["--model_base_path", str(tmp_path), "--port", "0", "--tensorflow_session_parallelism", "2",
            "--tensorflow_intra_op_parallelism", "1", "--tensorflow_inter_op_parallelism", "1"]
    assert server.main(argv) == 2
    assert "You cannot configure all" in capsys.readouterr().err
