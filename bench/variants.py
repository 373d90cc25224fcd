"""Keeps different configurations apart in the report.

The leaderboard averages an eraser's rows within a task section. Rows of the same eraser
made with two different eraser configs (a preset and a tuned learning rate), or of the same
task run with two option sets (the default attack and one with soft tokens), measure
different things: averaged, they would give a number nobody ran; and so do rows whose
images were drawn otherwise (``run --steps 10`` for a quick look, ``--precision bf16``).
So where a section holds more than one, each gets its own row, named by what differs:
``esd_x [lr=1e-05]``, ``esd_x [robustness: soft_tokens=4]``,
``esd_x [generation: precision="bf16"]``. The task's own default options and generation
settings and an eraser's only config keep the plain name, so a section with one
configuration per eraser reads as before and reported (published) numbers still meet the
rows run with the papers' protocol.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from erasebench.errors import PluginImportError, UnknownNameError, UserError
from erasebench.registry import TASKS
from erasebench.results import RunRecord


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _short(value: Any) -> str:
    text = _json(value)
    return text if len(text) <= 40 else text[:37] + "..."


def differing(settings: Sequence[dict[str, Any]]) -> list[str]:
    """For each settings dict, ``key=value`` of the keys whose values are not the same in
    all of them (a key one of them lacks counts as differing), comma-joined. Long values
    are cut for display; where that makes two labels alike, each gets a hash of its
    settings, so distinct settings never share a label."""
    keys = sorted({key for one in settings for key in one})
    varying = [k for k in keys if len({_json(one.get(k)) for one in settings}) > 1]
    labels = [", ".join(f"{k}={_short(one.get(k))}" for k in varying if k in one)
              for one in settings]
    if len(set(labels)) < len({_json(one) for one in settings}):
        labels = [f"{label} #{hashlib.sha256(_json(one).encode()).hexdigest()[:6]}".lstrip()
                  for label, one in zip(labels, settings, strict=True)]
    return labels


def _task_defaults(name: str) -> dict[str, Any] | None:
    try:
        return TASKS.get(name).Options().model_dump(mode="json")
    except (UnknownNameError, PluginImportError, TypeError, ValueError):
        return None  # not installed here, or options without defaults


def _task_generation(name: str, options: str) -> dict[str, Any] | None:
    """How task ``name`` under ``options`` (canonical JSON) draws its images (the
    robustness task draws as its base task does). Its callers remember the answers for
    one call of theirs, not for the process: a plugin may be registered anew."""
    try:
        return TASKS.get(name)(json.loads(options)).generation().model_dump(mode="json")
    except (UnknownNameError, PluginImportError, UserError, TypeError, ValueError):
        return None  # not installed here, or options this version no longer takes


def _canonical(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class Variants:
    labels: dict[str, str]  # run_id -> the suffix of its rows' eraser name ('' for most)
    # Runs made under a task's non-default options where the defaults ran too: another
    # protocol of that task, shown in its table but left out of the overall rank (or a
    # task with one more option set would weigh more there).
    other_protocol: frozenset[str]


def find_variants(records: Iterable[RunRecord]) -> Variants:
    """The configurations of every (task, model) section and how to name them apart."""
    sections: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        sections.setdefault((record.spec.task.name, record.spec.model.id), []).append(record)
    labels: dict[str, str] = {}
    other_protocol = set()
    for (task, _), members in sections.items():
        task_part = _task_option_parts(task, members)
        drawn_part = _generation_parts(task, members)
        for eraser in {r.spec.eraser.name for r in members}:
            mine = [r for r in members if r.spec.eraser.name == eraser]
            configs = {_canonical(r.spec.eraser.config): r.spec.eraser.config for r in mine}
            config_part = dict(zip(configs, differing(list(configs.values())), strict=True))
            for record in mine:
                protocol = [task_part[_canonical(record.spec.task.options)],
                            drawn_part[record.run_id]]
                if any(protocol):
                    other_protocol.add(record.run_id)
                parts = [config_part[_canonical(record.spec.eraser.config)], *protocol]
                text = "; ".join(part for part in parts if part)
                labels[record.run_id] = f" [{text}]" if text else ""
    return Variants(labels, frozenset(other_protocol))


def _task_option_parts(task: str, members: list[RunRecord]) -> dict[str, str]:
    """Canonical options -> their label part: '' for the only option set or the defaults.
    Options a record lacks (added to the task after it ran) count as their defaults."""
    defaults = _task_defaults(task)
    filled = {_canonical(r.spec.task.options): {**(defaults or {}), **r.spec.task.options}
              for r in members}
    return _label_parts(filled, lambda _: defaults, f"{task}: ")


def _generation_parts(task: str, members: list[RunRecord]) -> dict[str, str]:
    """Run id -> its label part: '' where every run drew alike or as its task draws."""
    drawn = {r.run_id: r.spec.generation.model_dump(mode="json") for r in members}
    options = {r.run_id: _canonical(r.spec.task.options) for r in members}
    generation = functools.cache(_task_generation)  # once per option set
    return _label_parts(drawn, lambda run_id: generation(task, options[run_id]),
                        "generation: ")


def _label_parts(settings: dict[str, dict[str, Any]], defaults: Callable[[str], Any],
                 prefix: str) -> dict[str, str]:
    """Each key's ``settings`` named by what differs from the others', after ``prefix``;
    '' where they are all alike (the defaults then not asked for: a task is built for its
    generation settings) or the key's settings are ``defaults(key)``."""
    distinct = {_canonical(value): value for value in settings.values()}
    if len(distinct) == 1:
        return dict.fromkeys(settings, "")
    parts = dict(zip(distinct, differing(list(distinct.values())), strict=True))
    return {key: "" if value == defaults(key) else f"{prefix}{parts[_canonical(value)]}"
            for key, value in settings.items()}


def setting_words(value: Any) -> str:
    """A setting's value as the notes print it: None (a size) is the model's own."""
    if value is None:
        return "the model's own"
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else _short(value)


def changed_settings(chosen: dict[str, Any], own: dict[str, Any]) -> list[str]:
    """``key value (the task's value)`` for each of ``chosen``'s settings that is not the
    task's ``own``: "steps 2 (the task's 4)", "height 40 (the task's: the model's own)"."""
    changed = []
    for key, value in chosen.items():
        if key not in own:
            changed.append(f"{key} {setting_words(value)} (an option the task no longer has)")
        elif value != own[key]:
            mine = setting_words(own[key])
            changed.append(f"{key} {setting_words(value)} (the task's"
                           f"{':' if own[key] is None else ''} {mine})")
    return changed


def protocol_differences(records: Iterable[RunRecord]) -> dict[str, str]:
    """Run id -> how it was run otherwise than its task's own protocol, its default options
    and the generation settings it draws with, which published numbers follow ("steps 2
    (the task's 4)"), whether or not other runs beside it ran alike; '' where it ran with
    the protocol. A task not installed here, or options this version does not take, count
    as its protocol (nothing to tell them apart by)."""
    differences = {}
    # Once per task and per option set, not per record
    defaults_of, generation = functools.cache(_task_defaults), functools.cache(_task_generation)
    for record in records:
        task, options = record.spec.task.name, record.spec.task.options
        defaults = defaults_of(task)
        changed = [] if defaults is None else changed_settings(dict(sorted(options.items())),
                                                               defaults)
        own = generation(task, _canonical(options))
        if own is not None:
            changed += changed_settings(record.spec.generation.model_dump(mode="json"), own)
        differences[record.run_id] = ", ".join(changed)
    return differences


def label_variants(frame: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """``frame`` (:func:`erasebench.results.records_to_frame`) with each configuration's
    rows under their own eraser name (``labels``: :attr:`Variants.labels`)."""
    suffix = frame["run_id"].map(labels).fillna("")
    if not suffix.astype(bool).any():
        return frame
    return frame.assign(eraser=frame["eraser"] + suffix)
