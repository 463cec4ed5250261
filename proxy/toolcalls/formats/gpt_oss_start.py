"""gpt-oss calls whose recipient comes first, with the harmony header written out:

    <|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>
"""
from .gpt_oss import parse as parse  # noqa: PLC0414 - same body after the marker

START, END = "<|start|>assistant to=functions.", "<|call|>"
