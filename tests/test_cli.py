"""The command line: profile commands, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from pcm_sim.cli import main


def test_profiles_list_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profiles", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("ideal", "pcm_nandakumar2019", "pcm_hermes2023", "pcm_aggressive"):
        assert name in out
    assert main(["profiles", "show", "pcm_hermes2023"]) == 0
    assert "g_max_us: 20.7" in capsys.readouterr().out


@pytest.mark.parametrize(
    "content",
    [
        "device: [unclosed",
        "just a string",
        "name: x\ndevice: {g_max_us: -1}\n",
        b"\x89PNG\r\n\x1a\n\x00\x00",
        "a: &a [1]\nb: *a\n",
    ],
)
def test_profiles_check_bad_file_exits_2_with_one_line(
    tmp_path: Path, content: str | bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    assert main(["profiles", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pcm-sim: error: ") and err.count("\n") == 1
    assert str(path) in err


def test_profiles_check_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = Path(__file__).parents[1] / "device_profiles" / "pcm_nandakumar2019.yaml"
    path = tmp_path / "mine.yaml"
    path.write_text(src.read_text())
    assert main(["profiles", "check", str(path)]) == 0


def test_unknown_profile_and_missing_checkpoint_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["profiles", "show", "no_such_chip"]) == 2
    assert "unknown profile 'no_such_chip'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "none.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert main(["train", "no_such_recipe"]) == 2
    assert "unknown recipe" in capsys.readouterr().err
