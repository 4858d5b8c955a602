"""Rebuild models.yaml from the reference configs beside the project.

    python tools/build_catalog.py [CONFIG_DIR] [--out models.yaml]

CONFIG_DIR (default ../shared/reference/configs) holds ``ORG__NAME.json`` files of
published config.json fields and a SOURCES.md table naming where each came from.
Each entry keeps the fields as published and records the defaults that the
installed transformers fills for the KV fields the file omits, plus (as ``supplement``)
the FFN and vocabulary sizes of tools/catalog_supplement.yaml that the copies leave out.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import yaml

from kvsize.model.catalog import dump_catalog
from kvsize.model.sources import catalog_entry

HEADER = """\
# kvsize's bundled model catalog.
# config: the model's published config.json fields that decide its KV-cache size, as published.
# defaults: what the model's transformers config class fills for KV fields the file omits
#   (vLLM reads the config object, defaults included); raw fields always win.
# source: where the fields were copied from (the Hub is the authority; re-check there).
# Rebuild: python tools/build_catalog.py; add models: kvsize catalog add (see README).
"""


def read_sources(config_dir: Path) -> dict[str, str]:
    """``model → "confidence; public copies"`` from SOURCES.md's table."""
    sources: dict[str, str] = {}
    table = config_dir / "SOURCES.md"
    for line in table.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and "/" in cells[0] and not set(cells[0]) <= {"-"}:
            copies = re.sub(r"`", "", cells[2])
            sources[cells[0]] = f"{cells[0]} config.json, from public copies: {copies}; confidence: {cells[1]}"
    return sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config_dir", nargs="?", default="../shared/reference/configs", type=Path)
    parser.add_argument("--out", default="models.yaml", type=Path)
    args = parser.parse_args()
    sources = read_sources(args.config_dir)
    supplement = yaml.safe_load((Path(__file__).parent / "catalog_supplement.yaml").read_text(encoding="utf-8"))
    models = {}
    for file in sorted(args.config_dir.glob("*.json"), key=lambda f: f.name.lower()):
        name = file.stem.replace("__", "/", 1)
        raw = json.loads(file.read_text(encoding="utf-8"))
        source = sources.get(name, "published config.json fields")
        entry = catalog_entry(raw, source=source, origin=str(file))
        extra = supplement["models"].get(name)
        if extra:
            entry = entry.model_copy(update={"supplement": extra, "supplement_source": supplement["source"]})
            if entry.published() == raw or any(key in raw and not isinstance(raw[key], dict) for key in extra):
                raise SystemExit(f"{name}: the supplement repeats or replaces a published field; fix catalog_supplement.yaml")
        models[name] = entry
    args.out.write_text(dump_catalog(models, HEADER), encoding="utf-8")
    print(f"wrote {len(models)} models to {args.out}")


if __name__ == "__main__":
    main()
