"""The dashboard's third-party assets, copied from the pinned npm packages into the package at build time.

The control host may have no internet, so the page loads nothing from a CDN: `deploy/bootstrap.sh` runs
`python -m mevcontrol.dashboard.vendor` after `npm ci`, which copies each file below from node_modules
(the exact version package.json pins) into `static/vendor/` (git-ignored; shipped with the package).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent
VENDOR = HERE / "static" / "vendor"
REPO = HERE.parents[2]
# npm package → the files the page loads from it
FILES: dict[str, tuple[str, ...]] = {"uplot": ("dist/uPlot.iife.min.js", "dist/uPlot.min.css")}


class VendorError(Exception):
    pass


def pinned(package: str, repo: Path = REPO) -> str:
    return json.loads((repo / "package.json").read_text())["devDependencies"][package]


def vendor(repo: Path = REPO, into: Path = VENDOR) -> list[Path]:
    """Copy the pinned packages' files into `into`; refuses a node_modules that holds another version."""
    into.mkdir(parents=True, exist_ok=True)
    copied = []
    for package, files in FILES.items():
        installed = json.loads((repo / "node_modules" / package / "package.json").read_text())["version"]
        if installed != pinned(package, repo):
            raise VendorError(
                f"node_modules/{package} is {installed}, package.json pins {pinned(package, repo)}: npm ci"
            )
        for name in files:
            target = into / Path(name).name
            shutil.copyfile(repo / "node_modules" / package / name, target)
            copied.append(target)
    return copied


def main() -> int:
    try:
        copied = vendor()
    except (OSError, KeyError, VendorError) as exc:
        print(f"mevcontrol.dashboard.vendor: {exc}", file=sys.stderr)
        return 1
    print(f"mevcontrol.dashboard.vendor: {len(copied)} files in {VENDOR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
