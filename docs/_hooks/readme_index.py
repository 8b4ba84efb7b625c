"""mkdocs hook: the README is the site's home page (index.md), so the two
never drift apart. Its links name pages as seen from the repository's root
(`docs/api.md`, which is how GitHub shows them); on the site the home page
sits beside those pages, so the prefix goes."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

DOCS_LINK = re.compile(r"\]\(docs/")


def on_files(files: Files, config: Any) -> Files:
    readme = Path(config.config_file_path).parent / "README.md"
    files.append(File.generated(config, "index.md", abs_src_path=str(readme)))
    return files


def on_page_markdown(markdown: str, page: Page, config: Any, files: Files) -> str:
    if page.file.src_uri == "index.md":
        return DOCS_LINK.sub("](", markdown)
    return markdown
