"""mkdocs hook: the README is the site's home page (index.md), so the two
never drift apart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files


def on_files(files: Files, config: Any) -> Files:
    readme = Path(config.config_file_path).parent / "README.md"
    files.append(File.generated(config, "index.md", abs_src_path=str(readme)))
    return files
