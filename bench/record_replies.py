"""Record real replies of a local OpenAI-compatible server as test fixtures.

Sends the tool's own prompt for the first chunk of each given article (json_schema mode, as the
backend asks first) and writes status, headers and raw body to tests/fixtures/<name>/*.json, which
tests/test_local_servers.py replays offline. Headers that could identify a machine are dropped.

    .venv/bin/python bench/record_replies.py http://127.0.0.1:8089/v1 eval/articles/000_*.txt
"""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from summarizer.article import load_article
from summarizer.backends.openai_backend import SCHEMA_NAME, _reply_schema
from summarizer.chunk import chunk_article
from summarizer.prompt import load_prompt
from summarizer.sections import split_sections

KEEP_HEADERS = ("content-type", "server", "content-length")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base_url")
    parser.add_argument("articles", nargs="+", type=Path)
    parser.add_argument("--name", default="llama_server")
    parser.add_argument("--model", default="local")
    args = parser.parse_args()
    out = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / args.name
    out.mkdir(parents=True, exist_ok=True)
    prompt = load_prompt()
    for path in args.articles:
        article = load_article(path)
        sections = [s for s in split_sections(article) if s.body_hint] or split_sections(article)
        chunk = chunk_article(article, sections, 1500, 150, None)[0]
        section = next(s for s in sections if s.index == chunk.section_index)
        messages = prompt.render(
            title=article.title or "(无)",
            published=article.published or "(未知)",
            body_hint=section.body_hint or "(未知)",
            chunk_number=1,
            chunk_count=1,
            chunk_text=chunk.text,
        )
        body = {
            "model": args.model,
            "messages": messages,
            "temperature": 0.0,
            "max_tokens": 1500,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": _reply_schema()},
            },
        }
        request = urllib.request.Request(
            args.base_url.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"content-type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            raw = response.read().decode("utf-8")
            record = {
                "article": path.name,
                "status": response.status,
                "headers": {k.lower(): v for k, v in response.headers.items() if k.lower() in KEEP_HEADERS},
                "body": raw,
            }
        target = out / f"{path.stem}.json"
        target.write_text(json.dumps(record, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        print(f"{target}: {len(raw)} bytes")


if __name__ == "__main__":
    main()
