"""Printing validation, promotion and session reports for the command line."""

from __future__ import annotations

import json
import sys
from html import escape
from pathlib import Path
from typing import Any

from console.store_views import write_new
from engine.config import PromotionConfig, ValidationConfig
from engine.store.read import reads_store


@reads_store
def print_validation(path: Path, session_id: int | None, strategy: str | None, as_json: bool,
                     thresholds: ValidationConfig | None, allow_drift: bool = False) -> int:
    """Validate a session and print the report; exit 0 when every check passes, 1 when one fails."""
    from engine.validation.validate import validate

    report = validate(path, session_id, strategy, thresholds, allow_drift)
    if as_json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.passed else 1


@reads_store
def print_promotion(path: Path, strategy: str, as_json: bool, criteria: PromotionConfig | None,
                    out_path: Path | None) -> int:
    """The promotion report; exit 0 when the strategy is ready (manual review aside), 1 when not."""
    from engine.validation.promotion import evaluate

    report = evaluate(path, strategy, criteria)
    text = json.dumps(report.as_dict(), indent=2) + "\n" if as_json else report.markdown()
    _emit(text, out_path)
    return 0 if report.ready else 1


@reads_store
def print_report(path: Path, session_id: int | None, fmt: str, out_path: Path | None) -> int:
    from engine.validation.session_report import session_report

    doc = session_report(path, session_id)
    text = {"json": lambda d: json.dumps(d, indent=2) + "\n", "md": markdown, "html": html_page}[fmt](doc)
    _emit(text, out_path)
    return 0


def _emit(text: str, out_path: Path | None) -> None:
    if out_path is None:
        sys.stdout.write(text)
        return
    # through a temporary name: a signal or a full disk mid-write leaves no half report that --out then refuses
    write_new(out_path, lambda handle: handle.write(text), binary=False)


def _cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def markdown(doc: dict[str, Any]) -> str:
    """A report document as Markdown: a key/value table per section, nested sections as subheadings."""
    out = [f"# {doc['title']}", ""]
    for name, body in doc.items():
        if name != "title":
            out += _md_section(name, body, 2)
    return "\n".join(out).rstrip() + "\n"


def _md_section(name: str, body: Any, level: int) -> list[str]:
    out = ["#" * level + " " + name, ""]
    if isinstance(body, list):
        out += [f"- {line}" for line in body] or ["- none"]
    elif body and all(isinstance(v, dict) for v in body.values()):
        for sub, inner in body.items():
            out += _md_section(sub, inner, level + 1)
        return out
    else:
        out += ["| | |", "|---|---|"] + [f"| {k} | {_cell(v)} |" for k, v in body.items()] if body else ["none"]
    return out + [""]


def html_page(doc: dict[str, Any]) -> str:
    """A report document as one self-contained HTML page (no scripts, no external files)."""
    title = escape(doc["title"])
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>"
             "body{font-family:sans-serif;max-width:70em;margin:2em auto}table{border-collapse:collapse}"
             "td{border:1px solid #ccc;padding:.2em .6em}</style></head><body>", f"<h1>{title}</h1>"]
    for name, body in doc.items():
        if name != "title":
            parts.append(_html_section(name, body, 2))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_section(name: str, body: Any, level: int) -> str:
    head = f"<h{level}>{escape(name)}</h{level}>"
    if isinstance(body, list):
        items = "".join(f"<li>{escape(str(line))}</li>" for line in body) or "<li>none</li>"
        return f"{head}<ul>{items}</ul>"
    if body and all(isinstance(v, dict) for v in body.values()):
        return head + "".join(_html_section(sub, inner, level + 1) for sub, inner in body.items())
    rows = "".join(f"<tr><td>{escape(str(k))}</td><td>{escape(_cell(v))}</td></tr>" for k, v in body.items())
    return f"{head}<table>{rows}</table>" if rows else f"{head}<p>none</p>"
