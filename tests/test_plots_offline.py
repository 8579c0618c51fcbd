"""`dvc plots show` draws with no network: the page DVC fills carries vega itself (vgan/plots_assets/)."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from collections import defaultdict
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from configobj import ConfigObj

from conftest import REPO, run_cli

ASSETS = REPO / "vgan" / "plots_assets"
TEMPLATE = ASSETS / "dvc_plots_template.html"
VOID_TAGS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
REMOTE = re.compile(r"^\s*(https?:)?//", re.IGNORECASE)


class PageParts(HTMLParser):
    """A page's elements as the browser would see them: script bodies, and every src/href an element has."""

    def __init__(self):
        super().__init__()
        self.scripts: list[tuple[dict, str]] = []
        self.links: list[tuple[str, str]] = []
        self._in_script: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.links += [(tag, attrs[name]) for name in ("src", "href") if attrs.get(name)]
        if tag == "script":
            self._in_script, self._script_text = attrs, []

    def handle_data(self, data):
        if self._in_script is not None:
            self._script_text.append(data)

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._script_text)))
            self._in_script = None


class DrawnCharts(HTMLParser):
    """What each chart div (vega-embed) holds after the page's scripts ran: SVGs, texts by Vega role, lines."""

    def __init__(self):
        super().__init__()
        self.charts: dict[str, dict] = {}
        self._open: list[tuple[str, dict]] = []

    def _chart(self) -> dict | None:
        for tag, attrs in reversed(self._open):
            if tag == "div" and "vega-embed" in (attrs.get("class") or "").split():
                return self.charts[attrs.get("id")]
        return None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "div" and "vega-embed" in (attrs.get("class") or "").split():
            self.charts[attrs.get("id")] = {"svgs": 0, "texts": defaultdict(list), "lines": set()}
        if tag not in VOID_TAGS:
            self._open.append((tag, attrs))
        chart = self._chart()
        if chart is None:
            return
        if tag == "svg" and "marks" in (attrs.get("class") or "").split():  # Vega's, not an icon's
            chart["svgs"] += 1
        if tag == "path" and attrs.get("aria-roledescription") == "line mark" and attrs.get("d"):
            chart["lines"].add(attrs["d"])  # Vega draws each line twice (plain and hover layers): one d

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        chart = self._chart()
        if chart is None or not self._open or self._open[-1][0] not in ("text", "tspan"):
            return
        roles = [c for _, attrs in reversed(self._open) for c in (attrs.get("class") or "").split()
                 if c.startswith("role-")]
        if roles and data.strip():
            chart["texts"][roles[0]].append(data.strip())


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found is None:
        pytest.skip("chromium is not installed: `make setup` installs it as root (scripts/install_system_deps.sh)")
    return found


def render_offline(page: Path, profile: Path) -> str:
    """The page's DOM after its scripts ran, in headless Chromium with every network request failing."""
    command = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               f"--user-data-dir={profile}",
               "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",  # no network at all
               "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "<body" in result.stdout, f"chromium failed: {result.stderr[-2000:]}"
    return result.stdout


def test_dvc_uses_the_committed_template_which_inlines_its_libraries_verbatim():
    configured = ConfigObj(str(REPO / ".dvc" / "config"))["plots"]["html_template"]
    assert (REPO / ".dvc" / configured).resolve() == TEMPLATE.resolve()  # DVC reads it relative to .dvc/
    text = TEMPLATE.read_text(encoding="utf-8")
    assert text.count("{plot_divs}") == 1
    assert "{scripts}" not in text  # DVC would put its CDN <script> tags there
    page = PageParts()
    page.feed(text)
    assert page.links == [], "the template must load nothing from elsewhere"
    provenance = re.findall(r"\| `(\S+@\S+)` \| `(\S+)` \| `([0-9a-f]{64})` \|", (ASSETS / "README.md").read_text())
    assert [spec.split("@")[0] for spec, _, _ in provenance] == ["vega", "vega-lite", "vega-embed"]
    for (spec, build, sha256), (_, body) in zip(provenance, page.scripts):
        assert hashlib.sha256(body.strip().encode("utf-8")).hexdigest() == sha256, f"{build} is not {spec}'s"


@pytest.mark.slow
def test_dvc_plots_show_draws_every_chart_with_no_network(tiny_repo, tmp_path):
    run_cli("dvc", "plots", "show", cwd=tiny_repo)  # plain: the template comes from .dvc/config
    page = tiny_repo / "dvc_plots" / "index.html"
    drawn = DrawnCharts()
    drawn.feed(render_offline(page, tmp_path / "chromium-profile"))
    rows = len((tiny_repo / "plots" / "train_losses.csv").read_text().splitlines()) - 1
    expected = [next(iter(plot.items())) for plot in yaml.safe_load((tiny_repo / "dvc.yaml").read_text())["plots"]]
    by_title = {title: chart for chart in drawn.charts.values() for title in chart["texts"]["role-title-text"]}
    assert len(drawn.charts) == len(expected) == 3, f"drawn: {sorted(drawn.charts)}"  # one per plot, no duplicate
    assert sorted(by_title) == sorted(name for name, _ in expected)
    for name, spec in expected:
        chart = by_title[name]
        fields = [field for columns in spec["y"].values()
                  for field in ([columns] if isinstance(columns, str) else columns)]
        assert chart["svgs"] == 1, f"{name}: {chart['svgs']} Vega drawings"
        assert chart["texts"]["role-title-text"] == [name]
        axis_titles = [spec.get("x_label", spec["x"]), spec["y_label"]]  # DVC titles x by its field by default
        assert sorted(chart["texts"]["role-axis-title"]) == sorted(axis_titles), name
        assert len(chart["lines"]) == len(fields), f"{name}: expected a line per field {fields}"
        for line in chart["lines"]:
            assert len(re.findall(r"[ML]", line)) == rows, f"{name}: a line without a vertex per CSV row"
    static = PageParts()
    static.feed(page.read_text(encoding="utf-8"))
    assert not [link for link in static.links if REMOTE.match(link[1])], "the page must not load from a network"
