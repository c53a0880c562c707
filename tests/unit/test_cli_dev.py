"""`postmaster dev` and `quickstart` with and without the development package (postmaster_dev) installed."""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest

from postmaster.cli.dev import local_control_plane
from postmaster.cli.main import build_parser, main


class _NotInstalled(importlib.abc.MetaPathFinder):
    """Finds postmaster_dev nowhere, the way an installation without it (the image) does."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] == "postmaster_dev":
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None


@pytest.fixture
def without_dev_package(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n.partition(".")[0] == "postmaster_dev"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NotInstalled(), *sys.meta_path])


def test_dev_verbs_come_from_the_dev_package() -> None:
    args = build_parser().parse_args(["dev", "down", "--wipe"])
    assert args.dev_verb == "down"
    assert args.wipe


@pytest.mark.usefixtures("without_dev_package")
@pytest.mark.parametrize("argv", [["dev"], ["dev", "up", "--timeout", "180"], ["dev", "status"]])
def test_dev_without_the_package_says_how_to_install_it(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "postmaster-dev" in err
    assert "pip install -e ./dev" in err


@pytest.mark.usefixtures("without_dev_package")
def test_quickstart_without_a_cluster_or_the_package_exits_with_one_line() -> None:
    with pytest.raises(SystemExit) as exited:
        local_control_plane()
    message = str(exited.value.code)
    assert "\n" not in message
    assert "make venv" in message
    assert "pip install -e ./dev" in message
