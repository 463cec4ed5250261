"""gpt-oss calls with the recipient before the channel (the prompt ends in `<|start|>assistant`):

     to=functions.NAME<|channel|>commentary json<|message|>{...}<|call|>
"""
from .gpt_oss import parse as parse  # noqa: PLC0414 - same body after the marker

START, END = "to=functions.", "<|call|>"
