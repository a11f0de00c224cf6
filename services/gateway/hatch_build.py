"""A hatch build hook: the web console's build (web/console/dist) goes into the gateway's wheel as
`xrunner/gateway/console_build`, so an install from wheels serves the console with no checkout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

TARGET = "xrunner/gateway/console_build"


class ConsoleBuild(BuildHookInterface):
    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        build = (Path(self.root) / ".." / ".." / "web" / "console" / "dist").resolve()
        if not (build / "index.html").is_file():
            raise RuntimeError(f"no web console build in {build}: run `./dev console` before building the wheels")
        build_data["force_include"][str(build)] = TARGET
