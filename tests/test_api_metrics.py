"""Every generating API is counted in the metrics as the chat endpoint is: one request, its generated tokens."""

import httpx
import pytest

from .conftest import scrape

MODEL = "tiny-llava"
#: path: (body asking for 3 tokens whatever the model says, how the body reports the tokens generated)
APIS = {
    "/v1/chat/completions": ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}, lambda r: r["usage"]["completion_tokens"]),
    "/v1/completions": ({"prompt": "Hi", "max_tokens": 3}, lambda r: r["usage"]["completion_tokens"]),
    "/v1/responses": ({"input": "Hi", "max_output_tokens": 3}, lambda r: r["usage"]["output_tokens"]),
    "/v1/messages": ({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3}, lambda r: r["usage"]["output_tokens"]),
}


@pytest.mark.parametrize("path", APIS)
def test_a_request_of_each_api_is_counted_with_its_tokens(server, path):
    body, generated = APIS[path]
    before = scrape(server.url)
    response = httpx.post(server.url + path, json={"model": MODEL, "ignore_eos": True, **body}, timeout=120)
    assert response.status_code == 200, response.text
    after = scrape(server.url)
    requests = ("vlm_router_requests_total", frozenset({"model": MODEL, "status": "200", "stream": "false"}.items()))
    tokens = ("vlm_router_generation_tokens_total", frozenset({"model": MODEL}.items()))
    assert after[requests] - before.get(requests, 0) == 1
    assert after[tokens] - before.get(tokens, 0) == generated(response.json()) == 3
