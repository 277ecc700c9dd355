"""The web pages' route table names its endpoints without loading them (`dockyard.web.routes`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from dockyard.web.routes import _Pages, routes


def test_every_page_of_the_table_loads() -> None:
    pages = _Pages()
    table = routes(pages)
    assert len(pages.targets) == len(table)
    for module, name, wrapped in pages.targets:
        endpoint = pages._make(module, name, wrapped)
        assert callable(endpoint), (module, name)
        if wrapped:  # behind `pages.common.page`, under the handler's own name
            assert endpoint.__name__ == name


def test_the_table_loads_no_page_and_no_template_engine() -> None:
    probe = textwrap.dedent("""
        import sys
        from dockyard.web.routes import routes
        routes()
        print(sorted(m for m in sys.modules if m == "jinja2" or m.startswith("dockyard.web.")))
    """)
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['dockyard.web.routes']"
