"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WATCHKEEPER_HOME", raising=False)
    monkeypatch.delenv("WATCHKEEPER_DATABASE_URL", raising=False)
    for block in blocks:
        exec(compile(block, str(README), "exec"), {})
    assert capsys.readouterr().out.strip().endswith("True")
    assert (tmp_path / ".watchkeeper" / "watchkeeper.db").is_file()


def test_toml_examples_declare_valid_monitors(tmp_path: Path) -> None:
    from watchkeeper.config import Settings
    from watchkeeper.monitoring.spec import declared_monitors
    from watchkeeper.retraining.spec import declared_retraining

    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "the README shows a watchkeeper.toml"
    for i, block in enumerate(blocks):
        path = tmp_path / f"{i}.toml"
        path.write_text(block)
        settings = Settings.load(env={}, config_file=path)
        for name, spec in declared_monitors(settings).items():
            assert spec.model == name
        for name, retraining in declared_retraining(settings).items():
            assert retraining.model == name
