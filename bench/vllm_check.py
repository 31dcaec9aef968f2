"""LLMGA on vLLM, checked on a GPU machine: parity with the in-process path and throughput.

    bash bench/vllm_check.sh              # makes .venv-vllm (vllm==0.33.0), then runs this file
    .venv/bin/python bench/vllm_check.py --vllm .venv-vllm/bin/vllm

What it does, unattended, with nothing downloaded but packages:
1. builds the Qwen2-0.5B-layout LLMGA folder with random weights (bench/mllm_decode.py) and exports it
   with ``python -m llmga_core.export hf-llava`` (fp16, target vllm);
2. starts ``vllm serve`` on 127.0.0.1 with the served name of the released folder;
3. parity: the same greedy text turn and image turn through LLMGA Remote MLLM's client (engine vllm) and
   through the pack's in-process path (CUDA, fp16), compared as text;
4. throughput: 1, 4 and 16 concurrent clients, each one text turn of ``--new-tokens`` tokens.
Prints its lines and writes bench/results/vllm_check.json. vLLM runs in its own virtual environment
because it pins its own torch.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench.common import write_result  # noqa: E402
from bench.mllm_decode import FOLDER_NAME, build_folder  # noqa: E402
from bench.remote_mllm import bench_turns  # noqa: E402
from llmga_core.export import export_hf_llava  # noqa: E402
from llmga_core.mllm.generate import SamplingSettings, run_turn  # noqa: E402
from llmga_core.mllm.model import load_mllm  # noqa: E402
from llmga_core.remote import RemoteMLLM, parse_endpoint  # noqa: E402


def _wait_healthy(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"vllm serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise RuntimeError(f"vllm serve did not answer /health within {timeout:.0f} s")


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm", default=str(REPO / ".venv-vllm" / "bin" / "vllm"), help="the vllm executable")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("vllm_check needs a CUDA GPU")

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="llmga-vllm-"))
    folder = build_folder(workdir)
    exported = export_hf_llava(folder, workdir / "hf", dtype=torch.float16, target="vllm")
    url = f"http://127.0.0.1:{args.port}"
    log = (workdir / "vllm.log").open("wb")
    cmd = [args.vllm, "serve", str(exported), "--served-model-name", FOLDER_NAME, "--host", "127.0.0.1"]
    cmd += ["--port", str(args.port), "--dtype", "float16", "--max-model-len", "4096", "--seed", "0"]
    cmd += ["--gpu-memory-utilization", "0.45"]  # leaves room for the in-process model beside it
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_NO_USAGE_STATS": "1"})
    result: dict = {"model": FOLDER_NAME, "gpu": torch.cuda.get_device_name(0)}
    try:
        start = time.monotonic()
        _wait_healthy(url, server, timeout=600)
        result["server_start_s"] = time.monotonic() - start
        print(f"vllm serve ready in {result['server_start_s']:.0f} s")
        client = RemoteMLLM(parse_endpoint(url, "vllm", FOLDER_NAME, timeout_s=300))
        mllm = load_mllm(folder, dtype=torch.float16, device=torch.device("cuda"))
        greedy = SamplingSettings(temperature=0.0, max_new_tokens=32, repetition_penalty=1.0)

        tasks = bench_turns(mllm, "qwen_2")
        text_prompt = tasks["text-to-image"][0]
        for task, (prompt, pixels, image_png) in tasks.items():
            mine = run_turn(mllm, prompt, pixels, greedy).text
            theirs = client.generate(prompt, greedy, image_png=image_png).text
            same = _common_prefix(mine, theirs)
            result[f"parity_{task}"] = {"local": mine, "vllm": theirs, "common_prefix_chars": same}
            print(f"parity {task}: {'identical' if mine == theirs else f'first {same} chars identical'}")
            print(f"  local: {mine!r}\n  vllm:  {theirs!r}")

        tokenizer = mllm.tokenizer
        decode = SamplingSettings(temperature=0.0, max_new_tokens=args.new_tokens, repetition_penalty=1.0)
        for clients in (1, 4, 16):

            def one(_: int) -> int:
                text = RemoteMLLM(client.endpoint).generate(text_prompt, decode).text
                return len(tokenizer(text).input_ids)

            start = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(clients) as pool:
                tokens = sum(pool.map(one, range(clients)))
            wall = time.perf_counter() - start
            result[f"clients_{clients}"] = {"tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall}
            print(
                f"{clients:2d} concurrent clients: {tokens / wall:.0f} tokens/s in all ({tokens} tokens, {wall:.1f} s)"
            )
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
    print(f"wrote {write_result('vllm_check', result)}")


if __name__ == "__main__":
    main()
