#!/usr/bin/env python3
"""A bounded load test of a running `h1bkv serve` or llama.cpp `llama-server` (loopback): a fixed
number of streaming completion requests, at most --concurrency at a time, each a prompt of about
--prompt-tokens tokens with max_tokens = --context - prompt tokens (so each reserves --context
tokens of cache), greedy. Prints one Markdown table row: most sequences admitted at once (h1bkv:
its h1bkv_max_active_sequences; llama-server started with --metrics: the most
llamacpp:requests_processing seen, polled), the most KV MB held (h1bkv_kv_bytes_held, polled
each second), requests, generated tokens/s over the run, decode tokens/s (client side: generated
tokens after each request's first, over the time when at least one request was between its first
and last token), the server's decode-only tokens/s (h1bkv: h1bkv_decode_tokens_total /
h1bkv_decode_seconds_total), time to first token p50/p99, inter-token latency p50/p99, failed
requests (errors, and those the time limit cut), wall time, mean 1-minute load average.
--no-stream sends whole (non-streaming) requests: the client then does no work per token (on a
2-core machine it shares the cores with the server), and has no time to first token, inter-token
latency or client-side decode rate ("-"); the server's decode-only rate remains.
Usage: .venv/bin/python scripts/serve_load.py URL [--requests 8] [--concurrency 8]
       [--prompt-tokens 1900] [--context 2048] [--time-limit 900] [--label NAME] [--words N]
       [--no-stream]"""
import argparse
import asyncio
import os
import re
import time
import urllib.request

import openai


def percentile(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def one(client, model, prompt, max_tokens, ttft, itl, counts, stream_it=True):
    if not stream_it:
        r = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens, temperature=0)
        counts["generated"] += r.usage.completion_tokens
        counts["prompt"].append(r.usage.prompt_tokens)
        return
    t0 = time.monotonic()
    first = last = None
    chunks, usage = 0, None
    stream = await client.completions.create(model=model, prompt=prompt, max_tokens=max_tokens,
                                             temperature=0, stream=True,
                                             stream_options={"include_usage": True})
    async for chunk in stream:
        now = time.monotonic()
        if chunk.usage:
            usage = chunk.usage
        if chunk.choices and chunk.choices[0].text:
            chunks += 1
            if first is None:
                first = now
                ttft.append(now - t0)
            else:
                itl.append(now - last)
            last = now
    # llama-server streams one token per chunk; its usage chunk, where sent, is the count
    generated = usage.completion_tokens if usage else chunks
    counts["generated"] += generated
    if usage:
        counts["prompt"].append(usage.prompt_tokens)
    if first is not None:
        counts["decode"].append((first, last, generated - 1))


def lat(xs, scale, fmt):
    """p50 / p99 of xs times scale, or - when there are none (whole responses)."""
    if not xs:
        return "-"
    return f"{scale * percentile(xs, 50):{fmt}} / {scale * percentile(xs, 99):{fmt}}"


def union_seconds(spans):
    total, end = 0.0, None
    for a, b, _ in sorted(spans):
        if end is None or a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def get(url):
    try:
        return urllib.request.urlopen(url, timeout=10).read().decode()
    except Exception:
        return ""


async def watch(url, seen):
    """Polls the server's metrics and the load average every second."""
    while True:
        metrics = await asyncio.to_thread(get, url + "/metrics")
        m = re.search(r"^llamacpp:requests_processing (\S+)", metrics, re.M)
        if m:
            seen["most"] = max(seen["most"], int(float(m.group(1))))
        m = re.search(r"h1bkv_kv_bytes_held\{[^}]*\} (\S+)", metrics)
        if m:
            seen["held"] = max(seen["held"], float(m.group(1)))
        seen["load"].append(os.getloadavg()[0])
        await asyncio.sleep(1)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, default=8)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--prompt-tokens", type=int, default=1900)
    ap.add_argument("--context", type=int, default=2048)
    ap.add_argument("--time-limit", type=float, default=900)
    ap.add_argument("--label", default="")
    ap.add_argument("--words", type=int, default=0, help="words per prompt (default: from --prompt-tokens)")
    ap.add_argument("--no-stream", action="store_true", help="whole responses: no per-token client work")
    a = ap.parse_args()
    client = openai.AsyncOpenAI(base_url=a.url + "/v1", api_key="-", max_retries=0, timeout=a.time_limit)
    model = (await client.models.list()).data[0].id
    words = ("the quick brown fox jumps over the lazy dog and then it runs back home to sleep " * 2000).split()
    # tokens per word of this text, from the server's own count (usage.prompt_tokens)
    probe = await client.completions.create(model=model, prompt=" ".join(words[:50]), max_tokens=1)
    n_words = a.words or int((a.prompt_tokens - 8) * 50 / probe.usage.prompt_tokens)
    prompts = [f"Story {i}: " + " ".join(words[i:i + n_words]) for i in range(a.requests)]
    max_tokens = a.context - a.prompt_tokens - 16  # headroom for the estimate
    ttft, itl, counts = [], [], {"generated": 0, "prompt": [], "decode": []}
    seen = {"most": 0, "load": [], "held": -1}
    sem = asyncio.Semaphore(a.concurrency)
    failed = 0
    completed = 0

    async def guarded(p):
        nonlocal failed, completed
        async with sem:
            try:
                await one(client, model, p, max_tokens, ttft, itl, counts, not a.no_stream)
                completed += 1
            except Exception as e:  # counted, and the first few printed
                failed += 1
                if failed <= 3:
                    print("request failed:", e)

    t0 = time.monotonic()
    watcher = asyncio.create_task(watch(a.url, seen))
    try:
        await asyncio.wait_for(asyncio.gather(*(guarded(p) for p in prompts)), a.time_limit)
    except asyncio.TimeoutError:
        print(f"time limit {a.time_limit} s reached")
    wall = time.monotonic() - t0
    watcher.cancel()
    failed = a.requests - completed  # errors, and requests cut by the time limit
    metrics = get(a.url + "/metrics")
    m = re.search(r"h1bkv_max_active_sequences\{[^}]*\} (\S+)", metrics)
    most = int(float(m.group(1))) if m else seen["most"]
    server_decode = "-"
    dt = re.search(r"^h1bkv_decode_tokens_total (\S+)", metrics, re.M)
    ds = re.search(r"^h1bkv_decode_seconds_total (\S+)", metrics, re.M)
    if dt and ds and float(ds.group(1)) > 0:
        server_decode = f"{float(dt.group(1)) / float(ds.group(1)):.1f}"
    decode_tokens = sum(n for _, _, n in counts["decode"])
    decode_span = union_seconds(counts["decode"])
    client_decode = f"{decode_tokens / decode_span:.1f}" if decode_span > 0 else "-"
    prompt_tok = max(counts["prompt"]) if counts["prompt"] else 0
    load = sum(seen["load"]) / len(seen["load"]) if seen["load"] else float("nan")
    print(f"{n_words} words per prompt, {counts['generated']} tokens generated")
    held = f"{seen['held'] / 1e6:.1f}" if seen["held"] >= 0 else "-"
    print(f"| {a.label} | {most} | {held} | {a.requests} x ({prompt_tok} prompt + {max_tokens} max) | "
          f"{counts['generated'] / wall:.1f} | {client_decode} | {server_decode} | "
          f"{lat(ttft, 1, '.2f')} | {lat(itl, 1000, '.0f')} | {failed} | {wall:.0f} | "
          f"{load:.1f} |")


asyncio.run(main())
