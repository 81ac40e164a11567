"""Text from the service made safe for a terminal.

Model output (and anything else a service sends) must not drive the user's terminal:
escape sequences could retitle the window, rewrite the screen, or hide text.
"""

import json
import re

# Escape sequences (CSI, OSC, two-byte ESC x), other C0 controls but tab and newline,
# DEL and the C1 range (which 8-bit terminals take as CSI and friends).
_CONTROL = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)
_C1 = re.compile(r"[\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` without terminal control characters (tabs and newlines are kept)."""
    return _CONTROL.sub("", text)


def json_line(obj: object) -> str:
    """One line of JSON; C0 controls are escaped by JSON itself, DEL and C1 here."""
    text = json.dumps(obj, ensure_ascii=False)
    return _C1.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
