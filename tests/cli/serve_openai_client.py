"""The official openai client against `h1bkv serve` (stories260K): chat, completion, streaming ==
non-streaming for greedy decoding, stop strings, usage counts, and the error statuses the client
sees. Usage: serve_openai_client.py BASE_URL API_KEY. Prints 'ok' when every check passed."""
import sys

import openai

base, key = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)
model = client.models.list().data[0].id
assert model == "stories260K.gguf", model

chat = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                      max_tokens=16, temperature=0)
text = chat.choices[0].message.content
assert chat.choices[0].message.role == "assistant"
assert chat.usage.completion_tokens <= 16 and chat.usage.prompt_tokens > 0
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
parts = []
stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}],
                                        max_tokens=16, temperature=0, stream=True,
                                        stream_options={"include_usage": True})
usage = None
for chunk in stream:
    if chunk.usage:
        usage = chunk.usage
    if chunk.choices and chunk.choices[0].delta.content:
        parts.append(chunk.choices[0].delta.content)
assert "".join(parts) == text, ("chat stream", "".join(parts), text)
assert usage.completion_tokens == chat.usage.completion_tokens, usage

comp = client.completions.create(model=model, prompt="Once upon a time", max_tokens=40, temperature=0)
full = comp.choices[0].text
assert comp.usage.completion_tokens == 40 and comp.choices[0].finish_reason == "length", comp
streamed = "".join(c.choices[0].text for c in client.completions.create(
    model=model, prompt="Once upon a time", max_tokens=40, temperature=0, stream=True) if c.choices)
assert streamed == full, ("completion stream", streamed, full)

stop = full[15:19]
cut = client.completions.create(model=model, prompt="Once upon a time", max_tokens=40,
                                temperature=0, stop=[stop])
assert cut.choices[0].text == full[:full.find(stop)], (stop, cut.choices[0].text, full)
assert cut.choices[0].finish_reason == "stop"

seeded = [client.completions.create(model=model, prompt="The cat", max_tokens=20, temperature=1.0,
                                    top_p=0.9, seed=7).choices[0].text for _ in range(2)]
assert seeded[0] == seeded[1], seeded

for bad, status in ((dict(messages=[]), 400), (dict(messages=[{"role": "user", "content": "x"}], max_tokens=0), 400),
                    (dict(messages=[{"role": "user", "content": "x"}], model="gpt-4"), 400)):
    args = dict(model=model, max_tokens=4)
    args.update(bad)
    try:
        client.chat.completions.create(**args)
        raise AssertionError(f"no error for {bad}")
    except openai.BadRequestError as e:
        assert e.status_code == status, e
try:
    openai.OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    raise AssertionError("a wrong key was accepted")
except openai.AuthenticationError:
    pass
print("ok")
