"""The README's Python example runs as written."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_blocks(path):
    with open(path, encoding="utf-8") as handle:
        return re.findall(r"```python\n(.*?)```", handle.read(), flags=re.S)


@pytest.mark.slow
def test_the_readme_python_example_runs_as_written(tmp_path):
    blocks = python_blocks(os.path.join(ROOT, "README.md"))
    assert blocks, "the README has a Python example"
    script = tmp_path / "example.py"
    script.write_text("\n".join(blocks))
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "api-example" / "model.keras").exists()
    printed = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(printed) == 3  # the reconstructions, the interpolated path and the model's path
