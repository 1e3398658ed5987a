#!/usr/bin/env python3
"""A bounded load test of a running `h1bkv serve` (loopback): a fixed number of streaming
completion requests, at most --concurrency at a time, each a prompt of about --prompt-tokens
tokens with max_tokens = --context - prompt tokens (so each reserves --context tokens of cache),
greedy. Prints one Markdown table row: most sequences admitted at once (the server's
h1bkv_max_active_sequences), generated tokens/s over the run, time to first token p50/p99,
inter-token latency p50/p99, failed requests.
Usage: .venv/bin/python scripts/serve_load.py URL [--requests 8] [--concurrency 8]
       [--prompt-tokens 1900] [--context 2048] [--time-limit 900] [--label NAME]"""
import argparse
import asyncio
import re
import time
import urllib.request

import openai


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def one(client, model, prompt, max_tokens, ttft, itl, counts):
    t0 = time.monotonic()
    last = None
    stream = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                             temperature=0, stream=True,
                                             stream_options={"include_usage": True})
    async for chunk in stream:
        now = time.monotonic()
        if chunk.usage:
            counts["generated"] += chunk.usage.completion_tokens
            counts["prompt"].append(chunk.usage.prompt_tokens)
        if chunk.choices and chunk.choices[0].text:
            if last is None:
                ttft.append(now - t0)
            else:
                itl.append(now - last)
            last = now


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=1900)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--time-limit", type=float, default=900)
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    client = openai.AsyncOpenAI(base_url=a.url + "/v1", api_key="-", max_retries=0, timeout=a.time_limit)
    model = (await client.models.list()).data[0].id
    words = ("the quick brown fox jumps over the lazy dog and then it runs back home to sleep " * 2000).split()
    # tokens per word of this text, from the server's own count (usage.prompt_tokens)
    probe = await client.completions.create(model=model, prompt=" ".join(words[:50]), max_tokens=1)
    n_words = int((a.prompt_tokens - 8) * 50 / probe.usage.prompt_tokens)
    prompts = [f"Story {i}: " + " ".join(words[i:i + n_words]) for i in range(a.requests)]
    max_tokens = a.context - a.prompt_tokens - 16  # headroom for the estimate
    ttft, itl, counts = [], [], {"generated": 0, "prompt": []}
    sem = asyncio.Semaphore(a.concurrency)
    failed = 0

    async def guarded(p):
        nonlocal failed
        async with sem:
            try:
                await one(client, model, p, max_tokens, ttft, itl, counts)
            except Exception as e:  # counted, and the first few printed
                failed += 1
                if failed <= 3:
                    print("request failed:", e)

    t0 = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(guarded(p) for p in prompts)), a.time_limit)
    except asyncio.TimeoutError:
        print(f"time limit {a.time_limit} s reached")
    wall = time.monotonic() - t0
    metrics = urllib.request.urlopen(a.url + "/metrics").read().decode()
    m = re.search(r"h1bkv_max_active_sequences\{[^}]*\} (\S+)", metrics)
    most = int(float(m.group(1))) if m else -1
    prompt_tok = max(counts["prompt"]) if counts["prompt"] else 0
    print(f"| {a.label} | {most} | {a.requests} x ({prompt_tok} prompt + {max_tokens} max) | "
          f"{counts['generated'] / wall:.1f} | {percentile(ttft, 50):.2f} / {percentile(ttft, 99):.2f} | "
          f"{1000 * percentile(itl, 50):.0f} / {1000 * percentile(itl, 99):.0f} | {failed} | {wall:.0f} |")


asyncio.run(main())
