"""Errors a user can cause and fix, which the CLI prints as one line: bad input (exit code
2), and a device without the memory a unit needs (exit code 1)."""

from __future__ import annotations

import re
from collections.abc import Iterable


class UserError(Exception):
    """Bad input: an unknown name, a malformed file, a wrong option. Never a bug of ours."""


class UnknownNameError(UserError, KeyError):
    """A plugin, metric or model name that does not exist; the message lists the valid ones."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        choices = ", ".join(self.valid) or "(none registered)"
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {choices}")

    def __str__(self) -> str:  # KeyError would otherwise quote the whole message
        return str(self.args[0])


class DuplicateNameError(UserError):
    """Two different plugins claim the same name."""


class PluginImportError(UserError):
    """A registered plugin could not be imported; names the plugin and its entry point."""


# An error's own words are shown up to this length (a DNS failure, "the hub did not answer");
# longer ones (huggingface_hub's paragraphs of advice) by their type alone.
SHORT_REASON = 200


def short_reason(error: Exception) -> str:
    """``TypeName: its words`` on one line, or the type's name alone where the words are
    none or too long: why a download failed, for a line of its own."""
    words = " ".join(str(error).split())
    return f"{type(error).__name__}: {words}" if words and len(words) <= SHORT_REASON \
        else type(error).__name__


def memory_account(error: Exception) -> str:
    """The first sentences of torch's out-of-memory message, which say what it tried to
    allocate and what the device has and had free; not its advice on the allocator."""
    sentences = re.split(r"(?<=\.) ", " ".join(str(error).split()))
    return " ".join(sentences[:3]).rstrip(".")


class OutOfDeviceMemory(Exception):
    """A unit's work did not fit its device's memory where no smaller batch is left to try:
    an eraser's training, a batch of one image (the generator's, a scorer's). ``unit``
    names it, ``account`` says where and doing what, with torch's account of the memory,
    and ``note`` why nothing lighter was tried. A run leaves the unit undone and goes on
    with the others, then names it and exits 1; what was recorded is kept, and a rerun
    resumes."""

    def __init__(self, unit: str, account: str, note: str) -> None:
        super().__init__(unit, account, note)  # args rebuild it where Ray unpickles it
        self.unit, self.account, self.note = unit, account, note

    def alone(self) -> OutOfDeviceMemory:
        """The same words without the traceback, which holds what the unit's frames held
        (its tensors on the device), for a run that goes on past the unit."""
        return OutOfDeviceMemory(self.unit, self.account, self.note)

    def __str__(self) -> str:
        return (f"{self.unit} ran out of memory {self.account}. The units recorded so far "
                "are kept, and the same command resumes on a device with more memory free "
                f"(no other process on it); {self.note}")


class UnitsLeftUndone(Exception):
    """A run that went on past units it could not do (out of device memory) and says at
    its end which; the CLI prints it in one line and exits 1."""


class CorruptFileError(Exception):
    """A stored file failed its integrity check (truncated, altered, or half-written)."""
