"""The documentation against the code: README.md's settings table holds
every setting of src/config/config.c and no other, its command table every
command of src/cli/main.c, its metrics table every metric the code
registers; every relative link of the Markdown files leads to a file that
exists and, with a #fragment, to a heading of it (GitHub's anchors).

Reads files only: no pixflare runs here."""
import glob
import os
import re

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))

pytestmark = pytest.mark.no_db


def read(rel):
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def section(text, title):
    """The text of the '## title' section, up to the next '## '."""
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert m, "README.md has no section '## %s'" % title
    return m.group(1)


def table_first_cells(text):
    """The first cell of each table row (header and rule rows included)."""
    return [line.split("|")[1].strip() for line in text.splitlines() if line.startswith("|")]


def test_every_setting_in_the_configuration_table():
    names = re.findall(r'^\s+"((?:PIXFLARE|ANALYTICS)_[A-Z_]+)",$', read("src/config/config.c"),
                       re.M)
    assert len(names) >= 27
    cells = table_first_cells(section(read("README.md"), "Configuration"))
    listed = set(re.findall(r"`((?:PIXFLARE|ANALYTICS)_[A-Z_]+)`", " ".join(cells)))
    assert sorted(set(names) - listed) == [], "settings missing from README's table"
    assert sorted(listed - set(names)) == [], "README's table names settings that do not exist"


def test_every_command_in_the_command_table():
    src = read("src/cli/main.c")
    table = src[src.index("static const struct cmd commands[]"):]
    names = re.findall(r'^    \{"([a-z-]+)", cmd_', table, re.M)
    assert "serve" in names and "backup" in names
    cells = " ".join(table_first_cells(section(read("README.md"), "Using it")))
    missing = [n for n in names if n != "help" and not re.search(r"`" + n + r"\b", cells)]
    assert missing == [], "commands missing from README's table"


def test_every_metric_in_the_metrics_table():
    code = ""
    for path in glob.glob(os.path.join(ROOT, "src", "*", "*.c")):
        with open(path, encoding="utf-8") as f:
            code += f.read()
    names = set(re.findall(r'"(pixflare_[a-z_]+)"', code)) - {"pixflare_cdn_metrics"}
    assert "pixflare_http_requests_total" in names
    ops = section(read("README.md"), "Operating")
    listed = set(re.findall(r"`(pixflare_[a-z_]+)[`{]", " ".join(table_first_cells(ops))))
    assert sorted(names - listed) == [], "metrics missing from README's table"
    assert sorted(listed - names) == [], "README's table names metrics the code does not have"


def anchor(heading):
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces
    to hyphens."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def anchors(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)  # no headings in code
    return {anchor(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


DOCS = ["README.md", "TESTING.md", "CHANGELOG.md", "BENCHMARKS.md"] + [
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))]


@pytest.mark.parametrize("doc", DOCS)
def test_links_resolve(doc):
    path = os.path.join(ROOT, doc)
    if not os.path.exists(path):
        pytest.skip("%s does not exist" % doc)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    bad = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # http:, mailto: ...: not ours to check
        file, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(path), file)) if file else path
        if not os.path.exists(dest):
            bad.append(target + " (no such file)")
        elif frag and dest.endswith(".md") and frag not in anchors(dest):
            bad.append(target + " (no such heading)")
    assert bad == [], "broken links in %s" % doc
