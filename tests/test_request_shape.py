"""The fixture maker: a reshaped body has the original's shape and sizes, the user's own text
and the tools' schemas, and none of the vendor's prose."""
from tests.rig.request_shape import client_shape, load, reshape, shape, tool_names

VENDOR = "You are an agent made by a vendor. Follow these rules."
BODY = {
    "model": "claude-sonnet-4-5", "max_tokens": 32000,
    "system": [{"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332.407; cch=9f3a1;"},
               {"type": "text", "text": VENDOR + "\n# Rules\n- be brief <tag>", "cache_control": {"type": "ephemeral",
                                                                                          "ttl": "1h"}}],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "<system-reminder>\n" + VENDOR + "\n</system-reminder>"},
                                     {"type": "text", "text": "What is in notes.txt?"}]},
        {"role": "system", "content": VENDOR},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "pineapple"}]},
    ],
    "tools": [{"name": "Read", "description": VENDOR, "input_schema": {
        "type": "object", "properties": {"type": {"type": "string", "description": VENDOR}}, "required": ["type"]}}],
}


def test_reshape_keeps_shape_sizes_and_the_users_words_and_drops_the_vendors():
    out = reshape(BODY)
    assert shape(out) == shape(BODY) and client_shape(out) == client_shape(BODY)
    assert tool_names(out) == ["Read"]
    text = str(out)
    assert VENDOR not in text and "Follow these rules" not in text
    assert "What is in notes.txt?" in text and "pineapple" in text
    assert out["system"][0]["text"] == "x-anthropic-billing-header: cc_version=2.1.332.407; cch=00000;"
    rules = out["system"][1]["text"]
    assert len(rules) == len(BODY["system"][1]["text"]) and rules.count("\n") == 2
    assert "\n# " in rules and rules.endswith("<tag>")  # markdown and tags are kept
    assert out["system"][1]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}
    reminder = out["messages"][0]["content"][0]["text"]
    assert reminder.startswith("<system-reminder>\n") and len(reminder) == len(BODY["messages"][0]["content"][0]["text"])
    assert out["tools"][0]["input_schema"]["properties"]["type"]["type"] == "string"
    assert reshape(BODY) == out  # deterministic: the same prose always becomes the same words


def test_every_committed_fixture_is_free_of_the_captures_vendor_sentences():
    """Sentences from Claude Code's system prompt that the reshaping must have removed."""
    for name in ("anyclaude-chat-completions-turn1.json", "anyclaude-responses-turn2.json",
                 "claude-code-2.0.77-turn2.json", "claude-code-2.1.332-turn2.json"):
        text = str(load(name)["body"])
        assert "Claude Agent SDK" not in text and "Anthropic" not in text, name
